namespace RolloutGate.Core.Deployments;

/// <summary>
/// The deployment life cycle as a pure function: given a state and a trigger, the next state or a refusal.
/// Everything that changes a deployment's state goes through <see cref="Next"/>, so an illegal transition
/// is refused in one place (the API answers it with 409) and nothing is written.
/// </summary>
public static class DeploymentStateMachine
{
    private static readonly Dictionary<(string From, DeploymentTrigger Trigger), string> Transitions = new()
    {
        [(DeploymentState.Checking, DeploymentTrigger.ChecksPassed)] = DeploymentState.Allowed,
        [(DeploymentState.Checking, DeploymentTrigger.ChecksFailed)] = DeploymentState.Denied,
        [(DeploymentState.Checking, DeploymentTrigger.Cancelled)] = DeploymentState.Cancelled,

        [(DeploymentState.Allowed, DeploymentTrigger.Deployed)] = DeploymentState.Watching,
        [(DeploymentState.Allowed, DeploymentTrigger.Cancelled)] = DeploymentState.Cancelled,
        [(DeploymentState.Allowed, DeploymentTrigger.RolledBackByPipeline)] = DeploymentState.RolledBack,
        [(DeploymentState.Allowed, DeploymentTrigger.Stop)] = DeploymentState.Stopped,

        // RolloutGate cannot stop a deploy: a change the pipeline deployed after a deny (an emergency fix through a
        // freeze) is running, and is watched like any other; its record says the gate was overridden.
        [(DeploymentState.Denied, DeploymentTrigger.Deployed)] = DeploymentState.Watching,
        [(DeploymentState.Denied, DeploymentTrigger.Cancelled)] = DeploymentState.Cancelled,

        [(DeploymentState.Watching, DeploymentTrigger.Regressed)] = DeploymentState.Regressed,
        [(DeploymentState.Watching, DeploymentTrigger.WatchCompleted)] = DeploymentState.Completed,
        [(DeploymentState.Watching, DeploymentTrigger.Rollback)] = DeploymentState.RollingBack,
        [(DeploymentState.Watching, DeploymentTrigger.RolledBackByPipeline)] = DeploymentState.RolledBack,
        [(DeploymentState.Watching, DeploymentTrigger.Stop)] = DeploymentState.Stopped,

        [(DeploymentState.Regressed, DeploymentTrigger.Rollback)] = DeploymentState.RollingBack,
        [(DeploymentState.Regressed, DeploymentTrigger.Dismiss)] = DeploymentState.Kept,
        [(DeploymentState.Regressed, DeploymentTrigger.Stop)] = DeploymentState.Stopped,
        [(DeploymentState.Regressed, DeploymentTrigger.RolledBackByPipeline)] = DeploymentState.RolledBack,

        [(DeploymentState.RollingBack, DeploymentTrigger.RollbackSucceeded)] = DeploymentState.RolledBack,
        [(DeploymentState.RollingBack, DeploymentTrigger.RolledBackByPipeline)] = DeploymentState.RolledBack,
        [(DeploymentState.RollingBack, DeploymentTrigger.Stop)] = DeploymentState.Stopped,
    };

    public static TransitionResult Next(string from, DeploymentTrigger trigger) =>
        Transitions.TryGetValue((from, trigger), out var to)
            ? TransitionResult.Allowed(from, to)
            : TransitionResult.Refused(from, trigger);
}

public sealed record TransitionResult(bool IsAllowed, string From, string? To, string? Reason)
{
    public static TransitionResult Allowed(string from, string to) => new(true, from, to, null);

    public static TransitionResult Refused(string from, DeploymentTrigger trigger) =>
        new(false, from, null, $"a deployment in state '{from}' cannot take '{Describe(trigger)}'");

    private static string Describe(DeploymentTrigger trigger) => trigger switch
    {
        DeploymentTrigger.PreDeploy => "predeploy",
        DeploymentTrigger.Deployed => "deployed",
        DeploymentTrigger.RolledBackByPipeline => "rolledback",
        DeploymentTrigger.Cancelled => "cancelled",
        DeploymentTrigger.Rollback => "rollback",
        DeploymentTrigger.Dismiss => "dismiss",
        DeploymentTrigger.Stop => "stop",
        DeploymentTrigger.Regressed => "a regression verdict",
        DeploymentTrigger.WatchCompleted => "the end of the watch",
        DeploymentTrigger.ChecksPassed => "passing checks",
        DeploymentTrigger.ChecksFailed => "failing checks",
        DeploymentTrigger.RollbackSucceeded => "the rollback's completion",
        _ => trigger.ToString(),
    };
}
