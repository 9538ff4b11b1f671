namespace RolloutGate.Core.Runbooks;

/// <summary>One problem in a runbook file, located for a human: "runbooks/checkout.yaml:12: unknown field 'maxIncrase'".</summary>
public sealed record RunbookError(string File, int Line, string Reason)
{
    public override string ToString() => $"{File}:{Line}: {Reason}";
}

/// <summary>The outcome of parsing one file: a runbook, or the errors that kept it out.</summary>
public sealed record RunbookParseResult(Runbook? Runbook, IReadOnlyList<RunbookError> Errors)
{
    public bool IsValid => Runbook is not null && Errors.Count == 0;
}
