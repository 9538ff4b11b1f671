using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Deployments;

/// <summary>
/// A pipeline that hangs up (its own timeout, a cancelled job) once the service has its webhook's body. The test holds the
/// audit trail (<see cref="HoldAuditAsync"/>) so that the delivery waits to write its audit event, hangs up the client while it
/// waits (the in-process server's request is aborted at once, as Kestrel's is when the connection closes), and then lets
/// it go on: what the delivery leaves behind does not depend on when the hang-up came.
/// </summary>
public sealed class WebhookHangUpTests
{
    [Fact]
    public async Task RefusedWebhook_ThePipelineHangsUpBeforeTheAnswer_TheRefusalIsStillAudited()
    {
        await using var service = await TestService.StartAsync();
        await using var hold = await HoldAuditAsync(service.Database);
        using var hangUp = new CancellationTokenSource();

        var sending = service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-1", service: "inventory"), "d-hang-up", cancellationToken: hangUp.Token);
        await hold.WaitForWaitersAsync(1, 30);
        await hangUp.CancelAsync();
        await hold.ReleaseAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);

        // The refusal (no runbook governs inventory) was decided before the hang-up: CONTRACT section 7 puts it on the
        // record. It was not: the write ended with the request.
        await SlackTestService.EventuallyAsync(async () => await service.CountAsync("audit_events",
            "type = 'webhook.refused' AND deployment_id = 'gh-1' AND data::jsonb->>'deliveryId' = 'd-hang-up' AND (data::jsonb->>'answer')::int = 422") == 1,
            "the refusal audited", 30);
        Assert.Equal(0, await service.CountAsync("deployments"));
        Assert.Equal(0, await service.CountAsync("webhook_deliveries"));
    }

    [Fact]
    public async Task AcceptedWebhook_ThePipelineHangsUpMidTransaction_NothingIsKeptAndItsRetryIsApplied()
    {
        await using var service = await TestService.StartAsync();
        await using var hold = await HoldAuditAsync(service.Database);
        using var hangUp = new CancellationTokenSource();
        var body = WebhookClient.Body("predeploy", "gh-2");

        var sending = service.Webhooks.SendAsync(body, "d-hang-up-2", cancellationToken: hangUp.Token);
        await hold.WaitForWaitersAsync(1, 30);
        await hangUp.CancelAsync();
        await hold.ReleaseAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);

        // Cut short inside its transaction: the delivery, the deployment and their audit events are all rolled back, none
        // kept without the others, so the pipeline's retry under the same delivery id is applied as new.
        await SlackTestService.EventuallyAsync(async () => await service.Database.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()", asAdmin: true) == 0,
            "the cut delivery's transaction over", 30);
        Assert.Equal(0, await service.CountAsync("webhook_deliveries"));
        Assert.Equal(0, await service.CountAsync("deployments"));
        Assert.Equal(0, await service.CountAsync("audit_events", "deployment_id = 'gh-2'"));

        var retry = await service.Webhooks.SendAsync(body, "d-hang-up-2");
        retry.EnsureSuccessStatusCode();
        Assert.Equal(1, await service.CountAsync("deployments", "id = 'gh-2'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.predeploy' AND deployment_id = 'gh-2'"));
    }

    /// <summary>
    /// The audit trail locked by the test (ACCESS EXCLUSIVE on audit_events) until released: an appender waits to read
    /// the chain's head.
    /// </summary>
    private static Task<DatabaseHold> HoldAuditAsync(TestDatabase database) =>
        DatabaseHold.TakeAsync(database, "the audit trail", "LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE");
}
