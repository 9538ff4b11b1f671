using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using RolloutGate.Api;
using RolloutGate.Audit;
using RolloutGate.Checks;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Runbooks;
using RolloutGate.Decisions;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Watch;
using RolloutGate.Webhooks;

namespace RolloutGate.Deployments;

/// <summary>
/// Applies one authenticated CD webhook delivery. Everything it changes (the delivery record, the deployment, its
/// audit events) is written in one transaction, so a crash leaves either all of it or none. The delivery row is
/// inserted first: a concurrent retry of the same delivery id waits on it, then finds the stored answer. A new
/// <c>predeploy</c>'s runbook checks run before that transaction, under a claim on the delivery id (<see cref="DeliveryClaims"/>):
/// a retry arriving while they run, on any replica, waits for their answer instead of running them again.
/// </summary>
public sealed partial class WebhookProcessor(
    RolloutGateDbContext db,
    RunbookCatalog runbooks,
    PreDeployGate gate,
    DeliveryClaims claims,
    AuditTrail audit,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<WebhookProcessor> logger)
{
    /// <summary>The actor of a refused delivery whose body names no initiator.</summary>
    public const string UnknownInitiator = "pipeline";

    /// <summary>Web defaults; quotes and '+' stay readable (these answers are JSON for pipelines, never inlined into HTML).</summary>
    public static readonly JsonSerializerOptions ResponseJson = new(JsonSerializerDefaults.Web)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public async Task<WebhookOutcome> ProcessAsync(string deliveryId, string bodySha256, WebhookRequest request, CancellationToken cancellationToken)
    {
        var governing = runbooks.Find(request.Service, request.Environment);
        // Released once the transaction below is over, whatever its outcome: a retry waiting for it then reads the answer.
        await using var claim = await ClaimChecksAsync(deliveryId, request, governing, cancellationToken);
        if (claim is not null)
        {
            // Carried to its answer when the caller hangs up (a CD system that timed out closes its connection, then
            // retries): the retry waits for this answer. The checks' timeout bounds it; only the host stopping cuts it short.
            cancellationToken = lifetime.ApplicationStopping;
        }

        var checks = claim is null ? null : await gate.RunChecksAsync(governing!, request, cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        // A delivery seen before gets its first answer whatever has changed since (its runbook removed, say): the
        // stored answer is looked for before anything else is.
        var claimed = await db.Database.ExecuteSqlAsync($"""
            INSERT INTO webhook_deliveries (delivery_id, body_sha256, deployment_id, event, received_at, status_code, response_body)
            VALUES ({deliveryId}, {bodySha256}, {request.DeploymentId}, {request.Event}, {now}, 0, '')
            ON CONFLICT (delivery_id) DO NOTHING
            """, cancellationToken);
        if (claimed == 0)
        {
            await transaction.RollbackAsync(cancellationToken);
            return await ReplayAsync(deliveryId, bodySha256, request, cancellationToken);
        }

        var outcome = await ApplyAsync(request, governing, checks, now, cancellationToken);
        if (outcome.Problem is not null)
        {
            // A refusal is not stored as the delivery's answer (a retry after the cause is fixed is applied), but it
            // is on the record.
            await transaction.RollbackAsync(CancellationToken.None);
            await RecordRefusalAsync(deliveryId, request, outcome.StatusCode, outcome.Problem.ProblemDetails.Detail);
            return outcome;
        }

        await db.Database.ExecuteSqlAsync($"""
            UPDATE webhook_deliveries SET status_code = {outcome.StatusCode}, response_body = {outcome.Body}
            WHERE delivery_id = {deliveryId}
            """, cancellationToken);
        await audit.AppendAsync(db, outcome.AuditEntries.Prepend(new AuditEntry(
            AuditEventTypes.Webhook(request.Event), request.DeploymentId, request.Service, request.Initiator,
            new { deliveryId, request, answer = outcome.StatusCode })).ToList(), cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        LogApplied(logger, request.Event, request.DeploymentId, request.Service, request.Environment, outcome.StatusCode);
        return outcome;
    }

    /// <summary>
    /// The claim to run a new <c>predeploy</c>'s runbook checks before the webhook's transaction begins (see
    /// <see cref="PreDeployGate"/>): null for any other event, without a governing runbook or where it has no checks, and for
    /// a delivery id or deployment id already on record, which is answered without them (the first answer again, or a
    /// conflict), at once rather than after the checks' timeout. A retry of a delivery whose checks another request runs
    /// waits for that request's answer, and gets it; should a retry turn out to be a duplicate after all (the other
    /// request's lease ran out before it answered), it gets the first answer, and what its checks found is not used.
    /// </summary>
    private Task<DeliveryClaim?> ClaimChecksAsync(
        string deliveryId, WebhookRequest request, LoadedRunbook? governing, CancellationToken cancellationToken) =>
        request.Event != WebhookEvents.PreDeploy || governing is null || governing.Runbook.PreDeploy.Checks.Count == 0
            ? Task.FromResult<DeliveryClaim?>(null)
            : claims.ClaimAsync(deliveryId, request.DeploymentId, governing.Runbook.PreDeploy.Timeout, cancellationToken);

    /// <summary>
    /// Puts an authenticated delivery that was refused (a body that is not a webhook, no governing runbook, a state that
    /// does not allow the event) on the audit record as <see cref="AuditEventTypes.WebhookRefused"/>, with the answer
    /// the pipeline got. <paramref name="request"/> is null when the body could not be read as a webhook, and
    /// <paramref name="deliveryId"/> when the delivery had no id that could be kept. Recorded even when the pipeline hangs
    /// up meanwhile (<see cref="AnsweredRecord"/>).
    /// </summary>
    public Task RecordRefusalAsync(string? deliveryId, WebhookRequest? request, int status, string? detail) =>
        RecordAsync(AuditEventTypes.WebhookRefused, request, new { deliveryId, request, answer = status, detail });

    private async Task RecordAsync(string type, WebhookRequest? request, object data)
    {
        using var bounded = AnsweredRecord.Cancellation(time);
        var cancellationToken = bounded.Token;
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await audit.AppendAsync(db, [new AuditEntry(type, request?.DeploymentId, request?.Service, request?.Initiator ?? UnknownInitiator, data)], cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// The first answer of a delivery id seen before, whatever this body is (CONTRACT section 4: a repeated delivery id
    /// gets the first answer again and has no second effect). A retry resends the same body; a different one under the
    /// same id is a sender that reuses ids for new events, and what it meant is not applied: the answer says it is a
    /// replay of another body (<see cref="WebhookOutcome.ReplayedOtherBody"/>), the log warns, and the audit trail
    /// keeps what was sent (<see cref="AuditEventTypes.WebhookReplayedOtherBody"/>).
    /// </summary>
    private async Task<WebhookOutcome> ReplayAsync(string deliveryId, string bodySha256, WebhookRequest request, CancellationToken cancellationToken)
    {
        var stored = await db.WebhookDeliveries.AsNoTracking().SingleAsync(d => d.DeliveryId == deliveryId, cancellationToken);
        var sameBody = stored.BodySha256 == bodySha256;
        if (sameBody)
        {
            LogReplayed(logger, deliveryId);
        }
        else
        {
            LogReplayedOtherBody(logger, deliveryId, stored.Event, stored.DeploymentId, request.Event, request.DeploymentId);
            await RecordAsync(AuditEventTypes.WebhookReplayedOtherBody, request, new
            {
                deliveryId,
                request,
                answer = stored.StatusCode,
                detail = $"delivery id '{deliveryId}' was first used for {stored.Event} of deployment '{stored.DeploymentId}': "
                    + "answered with that first answer again, and this body was not applied (a new event needs a new delivery id)",
            });
        }

        return WebhookOutcome.Stored(stored.StatusCode, stored.ResponseBody, []) with { ReplayedOtherBody = !sameBody };
    }

    /// <summary>
    /// <paramref name="governing"/> is the runbook in force for the webhook's service and environment, null when none
    /// is. Only a new change needs one (predeploy, or deployed without a predeploy); a change on record is governed by
    /// the version it pinned to its end, so the pipeline can still report it deployed, rolled back or cancelled after
    /// that runbook's file was removed.
    /// </summary>
    private async Task<WebhookOutcome> ApplyAsync(
        WebhookRequest request, LoadedRunbook? governing, IReadOnlyList<CheckResult>? checks, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // FOR UPDATE, as a person's decision, the watch and the rollback dispatcher take it: one of them moving the change
        // meanwhile is waited for, and its state is the one checked here. Read without it, a stop committed between this
        // read and the save was overwritten (both answered as having taken effect, two final states on record).
        var deployment = await db.Deployments
            .FromSql($"SELECT * FROM deployments WHERE id = {request.DeploymentId} FOR UPDATE")
            .Include(d => d.RunbookVersion)
            .SingleOrDefaultAsync(cancellationToken);
        if (deployment is not null && (deployment.Service != request.Service || deployment.Environment != request.Environment))
        {
            return governing is null
                ? NoRunbook(request)
                : WebhookOutcome.Refused(Problems.Conflict(
                    $"deployment '{request.DeploymentId}' belongs to service '{deployment.Service}' in '{deployment.Environment}'"));
        }

        return request.Event switch
        {
            WebhookEvents.PreDeploy => await PreDeployAsync(request, deployment, governing, checks, now, cancellationToken),
            WebhookEvents.Deployed => await DeployedAsync(request, deployment, governing, now, cancellationToken),
            WebhookEvents.RolledBack => await TransitionAsync(deployment, request, governing, DeploymentTrigger.RolledBackByPipeline, now, cancellationToken),
            _ => await TransitionAsync(deployment, request, governing, DeploymentTrigger.Cancelled, now, cancellationToken),
        };
    }

    private static WebhookOutcome NoRunbook(WebhookRequest request) =>
        WebhookOutcome.Refused(Problems.Unprocessable($"no runbook governs service '{request.Service}' in environment '{request.Environment}'"));

    /// <summary>
    /// A new change, checked: <paramref name="checks"/> are its runbook checks, run before the transaction
    /// (<see cref="ClaimChecksAsync"/>), and run here only where none were: a runbook without checks, or a deployment or
    /// delivery on record when they were not run and gone since (neither is ever deleted).
    /// </summary>
    private async Task<WebhookOutcome> PreDeployAsync(
        WebhookRequest request, DeploymentRow? existing, LoadedRunbook? governing, IReadOnlyList<CheckResult>? checks, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        if (governing is null)
        {
            return NoRunbook(request);
        }

        if (existing is not null)
        {
            return WebhookOutcome.Refused(Problems.Conflict(
                $"deployment '{existing.Id}' already exists in state '{existing.State}'; each change needs its own deploymentId"));
        }

        var deployment = NewDeployment(request, governing, DeploymentState.Checking, now);
        db.Deployments.Add(deployment);
        var entries = new List<AuditEntry>();
        checks ??= await gate.RunChecksAsync(governing, request, cancellationToken);
        var verdict = await gate.DecideAsync(deployment, governing, checks, request, entries, cancellationToken);
        var trigger = verdict.Allowed ? DeploymentTrigger.ChecksPassed : DeploymentTrigger.ChecksFailed;
        entries.Add(ChangeState(deployment, trigger, request.Initiator, now));
        await SaveAsync(cancellationToken);

        var response = new PreDeployResponse(deployment.Id, verdict.Allowed ? "allow" : "deny", verdict.Checks, governing.Ref);
        return WebhookOutcome.Stored(StatusCodes.Status200OK, JsonSerializer.Serialize(response, ResponseJson), entries);
    }

    private async Task<WebhookOutcome> DeployedAsync(
        WebhookRequest request, DeploymentRow? deployment, LoadedRunbook? governing, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var entries = new List<AuditEntry>();
        if (deployment is null)
        {
            if (governing is null)
            {
                return NoRunbook(request);
            }

            // A pipeline that skipped the gate step has deployed all the same: the change is watched, and where the
            // runbook has checks its record says they were not run (they are not run now: the change is already out).
            deployment = NewDeployment(request, governing, DeploymentState.Allowed, now);
            if (governing.Runbook.PreDeploy.Checks.Count > 0)
            {
                deployment.PreDeployGate = PreDeployGateBypass.Skipped;
            }

            db.Deployments.Add(deployment);
        }

        var change = DeploymentStateMachine.Next(deployment.State, DeploymentTrigger.Deployed);
        if (!change.IsAllowed)
        {
            return WebhookOutcome.Refused(Problems.Conflict(change.Reason!, StateExtension(deployment)));
        }

        // The version recorded at predeploy governs the whole change, even if the file was edited since. One an earlier
        // RolloutGate recorded may no longer parse: the change cannot be watched under it, and nothing changes.
        WatchSpec watch;
        try
        {
            watch = runbooks.VersionOf(deployment).Watch;
        }
        catch (StoredRunbookUnreadableException ex)
        {
            return WebhookOutcome.Refused(Problems.Unprocessable(
                $"deployment '{deployment.Id}' cannot be watched: its {ex.Message}; send predeploy again under a new deploymentId"));
        }

        if (deployment.State == DeploymentState.Denied)
        {
            deployment.PreDeployGate = PreDeployGateBypass.Overridden;
            (deployment.GateFailedChecks, deployment.GateErroredChecks) = await PreDeployGateBypass.NotPassedChecksAsync(db, deployment.Id, cancellationToken);
        }

        // In PostgreSQL's precision (microseconds), so the answer's watchUntil is the one the deployment shows later.
        var deployedAt = ToMicroseconds(request.At ?? now);
        deployment.DeployedAt = deployedAt;
        deployment.WatchStartedAt = now;
        deployment.WatchUntil = deployedAt + watch.Duration;
        deployment.BaselineFrom = deployedAt - watch.Baseline;
        deployment.BaselineTo = deployedAt;
        deployment.Version = request.Version ?? deployment.Version;
        entries.Add(ChangeState(deployment, DeploymentTrigger.Deployed, request.Initiator, now));
        var superseded = await SupersedeAsync(deployment, now, entries, cancellationToken);
        var replacedBy = watch.OnNewerDeploy == NewerDeployAction.Stop ? await EndIfReplacedAsync(deployment, now, entries, cancellationToken) : null;
        var bypass = PreDeployGateBypass.Describe(deployment);
        if (bypass is not null)
        {
            entries.Add(new AuditEntry(AuditEventTypes.GateBypassed, deployment.Id, deployment.Service, request.Initiator,
                new { preDeployGate = deployment.PreDeployGate, failedChecks = deployment.GateFailedChecks ?? [], erroredChecks = deployment.GateErroredChecks ?? [], summary = bypass }));
        }

        await SaveAsync(cancellationToken);
        if (bypass is not null)
        {
            LogGateBypassed(logger, deployment.Id, deployment.Service, deployment.Environment, bypass);
        }

        var response = new DeployedResponse(deployment.Id, deployment.State, deployment.WatchUntil.Value, PreDeployGateView.Of(deployment),
            superseded.Count == 0 ? null : superseded, replacedBy);
        return WebhookOutcome.Stored(StatusCodes.Status202Accepted, JsonSerializer.Serialize(response, ResponseJson), entries);
    }

    private async Task<WebhookOutcome> TransitionAsync(
        DeploymentRow? deployment, WebhookRequest request, LoadedRunbook? governing, DeploymentTrigger trigger, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (deployment is null)
        {
            return governing is null ? NoRunbook(request) : WebhookOutcome.Refused(Problems.Conflict($"deployment '{request.DeploymentId}' is unknown; there is nothing to mark {(request.Event == WebhookEvents.Cancelled ? "cancelled" : "rolled back")}"));
        }

        var change = DeploymentStateMachine.Next(deployment.State, trigger);
        if (!change.IsAllowed)
        {
            return WebhookOutcome.Refused(Problems.Conflict(change.Reason!, StateExtension(deployment)));
        }

        var entries = new List<AuditEntry> { ChangeState(deployment, trigger, request.Initiator, now) };
        await SaveAsync(cancellationToken);
        var response = new StateResponse(deployment.Id, deployment.State);
        return WebhookOutcome.Stored(StatusCodes.Status200OK, JsonSerializer.Serialize(response, ResponseJson), entries);
    }

    /// <summary>
    /// Under <c>watch.onNewerDeploy: stop</c>, ends the automation of every earlier change of <paramref name="deployment"/>'s
    /// service and environment that is still watching, or regressed and waiting for a decision: the new deploy replaced the
    /// version they judge. Left running, each goes on comparing the new version with its own, older baseline, and on a
    /// regression of the new version every one of them recommends a rollback in the decision channel and, in auto mode or
    /// on its approval time-out, rolls back to its own previous version, further back than the change that regressed. Each
    /// is stopped as by <c>stop</c>, by <see cref="DecisionPolicy.AutomaticActor"/> with the reason on record, which edits
    /// its Slack message. Whether a change is ended is its own pinned runbook version's say (the default, <c>keep</c>,
    /// leaves it watching, as before this setting). A change already rolling back is left to finish; one deployed after this
    /// one is not replaced by it (this one, a late <c>deployed</c> with an older <c>at</c>, is: <see cref="EndIfReplacedAsync"/>). The rows are locked in id order, as the
    /// watch's sweep locks them, so a verdict being stored for one meanwhile is waited for and then seen. The deploys of
    /// one service and environment take turns from here to their commit, so two at once end what one after the other
    /// would: each alone would miss the other's watch, not yet committed, and both would stay watching.
    /// </summary>
    private async Task<List<string>> SupersedeAsync(DeploymentRow deployment, DateTimeOffset now, List<AuditEntry> entries, CancellationToken cancellationToken)
    {
        await db.Database.TakeTurnAsync($"deployed:{deployment.Service}:{deployment.Environment}", cancellationToken);
        string[] replaceable = [DeploymentState.Watching, DeploymentState.Regressed];
        var earlier = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion)
            .Where(d => d.Service == deployment.Service && d.Environment == deployment.Environment && d.Id != deployment.Id
                        && replaceable.Contains(d.State) && d.DeployedAt <= deployment.DeployedAt)
            .ToListAsync(cancellationToken);
        var ending = earlier.Where(d => NewerDeploys.EndWatchOf(runbooks, d)).Select(d => d.Id).Order(StringComparer.Ordinal).ToArray();
        if (ending.Length == 0)
        {
            // Under the default (keep) no row is locked: a watch being stored meanwhile is not waited for.
            return [];
        }

        var locked = await db.Deployments.FromSql($"""
            SELECT * FROM deployments WHERE id = ANY({ending}) AND state = ANY({replaceable}) ORDER BY id FOR UPDATE
            """).ToListAsync(cancellationToken);
        var superseded = new List<string>();
        foreach (var replaced in locked)
        {
            entries.AddRange(StopSuperseded(replaced, deployment.Id, Named(deployment.Id, deployment.Version)
                + $" replaced this change in {deployment.Environment}; its watch and any rollback it recommended end here (watch.onNewerDeploy: stop)", now));
            superseded.Add(replaced.Id);
        }

        return superseded;
    }

    /// <summary>
    /// Under <c>watch.onNewerDeploy: stop</c>, ends <paramref name="deployment"/>'s watch before it starts when a newer
    /// change of its service and environment (a later <c>at</c>, within this watch's duration) is already on record: a late
    /// <c>deployed</c>, sent after the deploy that replaced it. Had the two arrived in the order they happened, that deploy
    /// would have ended this watch (<see cref="SupersedeAsync"/>); left running, it would judge the newer version against
    /// its own baseline, and on a regression of the newer version recommend a rollback to its own previous version. So the
    /// outcome does not depend on the order of arrival. The newer deploy counts whatever its state since: its
    /// rollback, too, came after this change was replaced. Runs after <see cref="SupersedeAsync"/>, in its turn, so a
    /// newer deploy committing meanwhile is seen. Returns the newer change's id, or null when there is none.
    /// </summary>
    private async Task<string?> EndIfReplacedAsync(DeploymentRow deployment, DateTimeOffset now, List<AuditEntry> entries, CancellationToken cancellationToken)
    {
        var newer = await db.Deployments.AsNoTracking()
            .Where(d => d.Service == deployment.Service && d.Environment == deployment.Environment && d.Id != deployment.Id
                        && d.DeployedAt > deployment.DeployedAt && d.DeployedAt < deployment.WatchUntil)
            .OrderBy(d => d.DeployedAt).ThenBy(d => d.Id)
            .Select(d => new { d.Id, d.Version, d.DeployedAt })
            .FirstOrDefaultAsync(cancellationToken);
        if (newer is null)
        {
            return null;
        }

        entries.AddRange(StopSuperseded(deployment, newer.Id, Named(newer.Id, newer.Version)
            + $" was deployed in {deployment.Environment} at {IsoTimes.Utc(newer.DeployedAt!.Value)}, after this change, and had already replaced it"
            + " when this deployed event arrived; its watch ends before it starts (watch.onNewerDeploy: stop)", now));
        return newer.Id;
    }

    /// <summary>
    /// The stop decision that ends <paramref name="replaced"/>, superseded by the change <paramref name="supersededBy"/>:
    /// <see cref="SupersedeAsync"/>'s and <see cref="EndIfReplacedAsync"/>'s, recorded alike whichever event came first.
    /// </summary>
    private IReadOnlyList<AuditEntry> StopSuperseded(DeploymentRow replaced, string supersededBy, string reason, DateTimeOffset now) =>
        DeploymentDecisions.Record(db, replaced, DecisionKinds.Stop, DecisionPolicy.AutomaticActor, reason,
            new { kind = DecisionKinds.Stop, reason, source = SupersededSource, supersededBy }, now);

    /// <summary>"deployment 'gh-run-8812' (version 2.4.0)", as a superseding change is named in the reason.</summary>
    private static string Named(string deploymentId, string? version) =>
        $"deployment '{deploymentId}'" + (version is null ? "" : $" (version {version})");

    /// <summary>The <c>source</c> of the stop decision that ends a change replaced by a newer deploy (see <see cref="SupersedeAsync"/>).</summary>
    public const string SupersededSource = "superseded";

    /// <summary>Moves a deployment through the state machine and returns the audit entry that records the move.</summary>
    public static AuditEntry ChangeState(DeploymentRow deployment, DeploymentTrigger trigger, string? actor, DateTimeOffset now)
    {
        var change = DeploymentStateMachine.Next(deployment.State, trigger);
        if (!change.IsAllowed)
        {
            throw new InvalidOperationException(change.Reason);
        }

        deployment.State = change.To!;
        deployment.UpdatedAt = now;
        if (change.To == DeploymentState.Regressed)
        {
            deployment.RegressedAt ??= now;
        }
        else if (change.To == DeploymentState.RolledBack)
        {
            deployment.RolledBackAt ??= now;
        }

        return new AuditEntry(AuditEventTypes.StateChanged, deployment.Id, deployment.Service, actor,
            new { from = change.From, to = change.To, trigger = trigger.ToString() });
    }

    private static DeploymentRow NewDeployment(WebhookRequest request, LoadedRunbook governing, string state, DateTimeOffset now) => new()
    {
        Id = request.DeploymentId,
        Service = request.Service,
        Environment = request.Environment,
        Version = request.Version,
        PreviousVersion = request.PreviousVersion,
        Initiator = request.Initiator,
        CommitSha = request.Commit,
        PipelineUrl = request.PipelineUrl,
        State = state,
        RunbookVersionId = governing.VersionId,
        CreatedAt = now,
        UpdatedAt = now,
    };

    private static DateTimeOffset ToMicroseconds(DateTimeOffset at) => at.AddTicks(-(at.Ticks % TimeSpan.TicksPerMicrosecond));

    private static Dictionary<string, object?> StateExtension(DeploymentRow deployment) => new() { ["state"] = deployment.State };

    private async Task SaveAsync(CancellationToken cancellationToken)
    {
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException ex) when (ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            throw new ConcurrentChangeException("another delivery changed this deployment at the same time", ex);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Webhook {Event} for deployment {DeploymentId} ({Service}/{Environment}) answered {Status}")]
    private static partial void LogApplied(ILogger logger, string @event, string deploymentId, string service, string environment, int status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deployment {DeploymentId} ({Service}/{Environment}) is watched, but it was {GateBypass}")]
    private static partial void LogGateBypassed(ILogger logger, string deploymentId, string service, string environment, string gateBypass);

    [LoggerMessage(Level = LogLevel.Information, Message = "Delivery {DeliveryId} was seen before; answering as the first time")]
    private static partial void LogReplayed(ILogger logger, string deliveryId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Delivery {DeliveryId} was seen before with another body ({FirstEvent} of deployment {FirstDeploymentId}); answering as the first time, and this {Event} of deployment {DeploymentId} is not applied: the sender must give each new event a new delivery id")]
    private static partial void LogReplayedOtherBody(ILogger logger, string deliveryId, string firstEvent, string firstDeploymentId, string @event, string deploymentId);
}

/// <summary>Two deliveries raced on one deployment; the loser is answered 409 and may retry.</summary>
public sealed class ConcurrentChangeException(string message, Exception inner) : Exception(message, inner);

/// <summary>A stored answer (replayed to retries) or a refusal that changed nothing.</summary>
public sealed record WebhookOutcome(int StatusCode, string Body, IReadOnlyList<AuditEntry> AuditEntries, ProblemHttpResult? Problem)
{
    /// <summary>The header that marks the first answer of a delivery id given again with another body.</summary>
    public const string ReplayHeader = "X-RolloutGate-Replayed";

    /// <summary>Whether this is the first answer of the delivery id, replayed to a delivery with another body.</summary>
    public bool ReplayedOtherBody { get; init; }

    public static WebhookOutcome Stored(int statusCode, string body, IReadOnlyList<AuditEntry> auditEntries) =>
        new(statusCode, body, auditEntries, null);

    public static WebhookOutcome Refused(ProblemHttpResult problem) => new(problem.StatusCode, "", [], problem);

    public IResult ToResult() => (IResult?)Problem ?? TypedResults.Content(Body, "application/json", System.Text.Encoding.UTF8, StatusCode);
}
