namespace RolloutGate.Core.Deployments;

/// <summary>What can happen to a deployment: CD webhook events, watch outcomes and human or automatic decisions.</summary>
public enum DeploymentTrigger
{
    /// <summary>CD webhook <c>predeploy</c>: the gate starts checking.</summary>
    PreDeploy,

    /// <summary>The pre-deploy checks passed.</summary>
    ChecksPassed,

    /// <summary>The pre-deploy checks failed.</summary>
    ChecksFailed,

    /// <summary>CD webhook <c>deployed</c>: the watch starts.</summary>
    Deployed,

    /// <summary>CD webhook <c>rolledback</c>: the pipeline rolled the change back itself.</summary>
    RolledBackByPipeline,

    /// <summary>CD webhook <c>cancelled</c>: the pipeline gave up on the change.</summary>
    Cancelled,

    /// <summary>The watch found a regression.</summary>
    Regressed,

    /// <summary>The watch ran its full duration without a regression.</summary>
    WatchCompleted,

    /// <summary>A rollback was decided (automatically, by a person, or on approval time-out).</summary>
    Rollback,

    /// <summary>The rollback action finished.</summary>
    RollbackSucceeded,

    /// <summary>A person kept a change that was recommended for rollback.</summary>
    Dismiss,

    /// <summary>A person stopped all automation for the deployment.</summary>
    Stop,
}
