namespace RolloutGate.Checks;

/// <summary>What a pre-deploy check is asked about: a change to a service in an environment, judged at time <see cref="At"/>.</summary>
public sealed record CheckContext(string Service, string Environment, DateTimeOffset At);

/// <summary>One check's outcome, as it appears in a predeploy answer (CONTRACT section 4).</summary>
/// <param name="Status"><see cref="CheckStatus.Pass"/>, <see cref="CheckStatus.Fail"/> or <see cref="CheckStatus.Error"/>.</param>
public sealed record CheckResult(string Name, string Status, string Detail)
{
    public static CheckResult Pass(string name, string detail) => new(name, CheckStatus.Pass, detail);

    public static CheckResult Fail(string name, string detail) => new(name, CheckStatus.Fail, detail);

    /// <summary>The check could not judge (unreachable back-end, bad query, timeout); never counts as a pass.</summary>
    public static CheckResult Error(string name, string detail) => new(name, CheckStatus.Error, detail);
}

public static class CheckStatus
{
    public const string Pass = "pass";
    public const string Fail = "fail";
    public const string Error = "error";
}

/// <summary>One kind of pre-deploy check (the member of <see cref="Core.Runbooks.CheckSpec"/> that is set).</summary>
public interface IPreDeployCheck
{
    /// <summary>Matches <see cref="Core.Runbooks.CheckSpec.Kind"/>.</summary>
    string Kind { get; }

    /// <summary>Judges the check; may throw, which <see cref="PreDeployCheckRunner"/> reports as an error.</summary>
    Task<CheckResult> RunAsync(Core.Runbooks.CheckSpec check, CheckContext context, CancellationToken cancellationToken);
}
