namespace RolloutGate.Rollbacks;

/// <summary>Sends a rollback to the class for its kind; exactly one kind is set in a validated runbook.</summary>
internal sealed class RollbackExecutor(
    IstioRollbackAction istio,
    LinkerdRollbackAction linkerd,
    SmiRollbackAction smi,
    ArgoRolloutsRollbackAction argoRollouts,
    WebhookRollbackAction webhook) : IRollbackExecutor
{
    public Task<RollbackOutcome> ExecuteAsync(RollbackRequest request, CancellationToken cancellationToken)
    {
        var action = request.Action;
        return action switch
        {
            { Istio: { } spec } => istio.ExecuteAsync(spec, request, cancellationToken),
            { Linkerd: { } spec } => linkerd.ExecuteAsync(spec, request, cancellationToken),
            { Smi: { } spec } => smi.ExecuteAsync(spec, request, cancellationToken),
            { ArgoRollouts: { } spec } => argoRollouts.ExecuteAsync(spec, request, cancellationToken),
            { Webhook: { } spec } => webhook.ExecuteAsync(spec, request, cancellationToken),
            _ => Task.FromResult(new RollbackOutcome(
                false, "none", $"the runbook for {request.Service} in {request.Environment} has no rollback.action; roll back by hand to {request.RollbackTo}", 0)),
        };
    }
}
