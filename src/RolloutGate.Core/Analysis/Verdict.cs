namespace RolloutGate.Core.Analysis;

/// <summary>What one evaluation of one metric concluded.</summary>
public enum Verdict
{
    /// <summary>No evidence of a change beyond what the runbook allows.</summary>
    Healthy,

    /// <summary>The sequential test found an increase beyond <c>maxIncrease</c> against the baseline.</summary>
    Regressed,

    /// <summary>The value stayed above the absolute <c>max</c> for several consecutive intervals.</summary>
    BreachOfMax,

    /// <summary>There was data, but too little to judge (too few requests in the interval or in the baseline).</summary>
    InsufficientData,

    /// <summary>There was no data at all; never read as healthy.</summary>
    Blind,

    /// <summary>The value stayed below the absolute <c>min</c> (the floor) for several consecutive intervals (last, so the others keep their numbers).</summary>
    BreachOfMin,
}
