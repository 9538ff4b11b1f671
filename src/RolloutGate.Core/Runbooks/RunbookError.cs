namespace RolloutGate.Core.Runbooks;

/// <summary>One problem in a runbook file, located for a human: "runbooks/checkout.yaml:12: unknown field 'maxIncrase'".</summary>
public sealed record RunbookError(string File, int Line, string Reason)
{
    public override string ToString() => $"{File}:{Line}: {Reason}";
}

/// <summary>
/// The outcome of parsing one file: a runbook, or the errors that kept it out. A valid runbook may come with warnings:
/// something it asks for that will not work as it reads (a limit that can never be judged), said without refusing it.
/// </summary>
public sealed record RunbookParseResult(Runbook? Runbook, IReadOnlyList<RunbookError> Errors)
{
    public bool IsValid => Runbook is not null && Errors.Count == 0;

    /// <summary>What will not work as it reads but does not refuse the runbook; said of an invalid file too, beside its errors.</summary>
    public IReadOnlyList<RunbookError> Warnings { get; init; } = [];
}
