using RolloutGate.Core.Deployments;

namespace RolloutGate.Core.Tests.Deployments;

public sealed class DeploymentStateMachineTests
{
    [Theory]
    [InlineData(DeploymentState.Checking, DeploymentTrigger.ChecksPassed, DeploymentState.Allowed)]
    [InlineData(DeploymentState.Checking, DeploymentTrigger.ChecksFailed, DeploymentState.Denied)]
    [InlineData(DeploymentState.Allowed, DeploymentTrigger.Deployed, DeploymentState.Watching)]
    [InlineData(DeploymentState.Watching, DeploymentTrigger.Regressed, DeploymentState.Regressed)]
    [InlineData(DeploymentState.Watching, DeploymentTrigger.WatchCompleted, DeploymentState.Completed)]
    [InlineData(DeploymentState.Regressed, DeploymentTrigger.Rollback, DeploymentState.RollingBack)]
    [InlineData(DeploymentState.Regressed, DeploymentTrigger.Dismiss, DeploymentState.Kept)]
    [InlineData(DeploymentState.RollingBack, DeploymentTrigger.RollbackSucceeded, DeploymentState.RolledBack)]
    [InlineData(DeploymentState.Watching, DeploymentTrigger.Stop, DeploymentState.Stopped)]
    [InlineData(DeploymentState.Allowed, DeploymentTrigger.Cancelled, DeploymentState.Cancelled)]
    [InlineData(DeploymentState.Denied, DeploymentTrigger.Deployed, DeploymentState.Watching)]
    public void Next_LegalTransition_GoesToExpectedState(string from, DeploymentTrigger trigger, string to)
    {
        var result = DeploymentStateMachine.Next(from, trigger);

        Assert.True(result.IsAllowed);
        Assert.Equal(to, result.To);
    }

    [Theory]
    [InlineData(DeploymentState.Completed, DeploymentTrigger.Rollback)]
    [InlineData(DeploymentState.Watching, DeploymentTrigger.Dismiss)]
    [InlineData(DeploymentState.Stopped, DeploymentTrigger.Deployed)]
    [InlineData(DeploymentState.Checking, DeploymentTrigger.Deployed)]
    public void Next_IllegalTransition_IsRefusedWithReason(string from, DeploymentTrigger trigger)
    {
        var result = DeploymentStateMachine.Next(from, trigger);

        Assert.False(result.IsAllowed);
        Assert.Null(result.To);
        Assert.Contains(from, result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Next_FromAnyFinalState_NothingIsAllowed()
    {
        foreach (var state in DeploymentState.All.Where(DeploymentState.IsFinal))
        {
            foreach (var trigger in Enum.GetValues<DeploymentTrigger>())
            {
                var result = DeploymentStateMachine.Next(state, trigger);
                Assert.False(result.IsAllowed && state != DeploymentState.Denied, $"{state} --{trigger}--> {result.To}");
            }
        }
    }
}
