using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;

namespace RolloutGate.Slack;

/// <summary>
/// Turns audit events into decision-channel messages, in the transaction that appends them: a state change edits the
/// deployment's root message; a verdict change, decision, refusal or rollback action gets a thread reply. A decision, or a
/// move to a state other than regressed, also edits the replies that offered buttons, which no longer apply. Everything
/// else stays quiet, so a healthy watch makes no noise. A deployment whose runbook version no longer parses (recorded by an
/// older RolloutGate whose parser accepted what this one refuses) has no decision channel to read: its changes are
/// recorded without a message, and the log says so, instead of failing the transaction that makes them (an operator's
/// stop of such a deployment answered 500 and changed nothing).
/// </summary>
public sealed partial class DecisionChannelSubscriber(
    RunbookCatalog runbooks, IOptionsMonitor<RolloutGateOptions> options, TimeProvider time, ILogger<DecisionChannelSubscriber> logger)
    : IAuditSubscriber
{
    public async Task OnAppendedAsync(RolloutGateDbContext db, IReadOnlyList<AuditEventRow> appended, CancellationToken cancellationToken)
    {
        // Read once per deployment: a decision and the state change it makes are two events of one deployment, and the
        // caller holds the audit lock until it commits.
        var deployments = new Dictionary<string, DeploymentRow?>(StringComparer.Ordinal);
        // A decision and the state change it makes both settle a deployment's buttons: looked up once, by the first of them.
        var settled = new HashSet<string>(StringComparer.Ordinal);
        foreach (var audit in appended)
        {
            if (audit.DeploymentId is null || !IsAnnounced(audit.Type))
            {
                continue;
            }

            if (!deployments.TryGetValue(audit.DeploymentId, out var deployment))
            {
                deployment = deployments[audit.DeploymentId] = await db.Deployments.Include(d => d.RunbookVersion)
                    .SingleOrDefaultAsync(d => d.Id == audit.DeploymentId, cancellationToken);
            }

            if (deployment is null)
            {
                continue;
            }

            Runbook runbook;
            try
            {
                runbook = runbooks.VersionOf(deployment);
            }
            catch (StoredRunbookUnreadableException ex)
            {
                LogNoChannel(logger, deployment.Id, audit.Type, ex.Message);
                continue;
            }

            var channel = runbook.DecisionChannel;
            var now = time.GetUtcNow();
            if (audit.Type == AuditEventTypes.StateChanged)
            {
                await EnqueueRootAsync(db, deployment, runbook, $"slack:root:{audit.Id}", now, cancellationToken);
                // Buttons are for a regressed deployment (and a failed action's retry): any other move settles them.
                if (SlackMessages.SettledByState(audit.Data) is { } moved && settled.Add(deployment.Id))
                {
                    await SlackOutbox.EnqueueSettlesAsync(db, deployment.Id, moved, now, cancellationToken);
                }

                continue;
            }

            if (audit.Type == AuditEventTypes.Decision && settled.Add(deployment.Id))
            {
                await SlackOutbox.EnqueueSettlesAsync(db, deployment.Id, SlackMessages.SettledByDecision(audit.Actor, audit.Data), now, cancellationToken);
            }

            var publicUrl = options.CurrentValue.PublicUrl;
            var reply = audit.Type switch
            {
                AuditEventTypes.Evaluation => SlackMessages.VerdictChanged(channel, deployment, audit.Data, publicUrl),
                AuditEventTypes.Decision => SlackMessages.Decision(channel, deployment.Id, audit.Actor, audit.Data, publicUrl),
                AuditEventTypes.Refusal => SlackMessages.Refusal(channel, deployment.Id, audit.Actor, audit.Data, publicUrl),
                _ => SlackMessages.RollbackAction(channel, deployment.Id, deployment.State, audit.Data, publicUrl),
            };
            await EnqueueReplyAsync(db, deployment, runbook, reply, $"slack:reply:{audit.Id}", cancellationToken);
        }
    }

    /// <summary>
    /// A thread reply; the root message is enqueued first when the deployment has none yet (or only ones given up), so a
    /// thread exists and the reply is never posted loose in the channel. That root is keyed by the reply: a reply
    /// delivered again enqueues nothing twice.
    /// </summary>
    public async Task EnqueueReplyAsync(RolloutGateDbContext db, DeploymentRow deployment, Runbook runbook, OutboxMessage reply, string idempotencyKey,
        CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (!await SlackOutbox.HasRootAsync(db, deployment.Id, cancellationToken))
        {
            await EnqueueRootAsync(db, deployment, runbook, $"slack:root:before:{idempotencyKey}", now, cancellationToken);
        }

        await SlackOutbox.EnqueueAsync(db, deployment.Id, OutboxKinds.SlackReply, idempotencyKey, reply, now, cancellationToken);
    }

    private Task EnqueueRootAsync(RolloutGateDbContext db, DeploymentRow deployment, Runbook runbook, string idempotencyKey, DateTimeOffset now,
        CancellationToken cancellationToken) =>
        SlackOutbox.EnqueueAsync(db, deployment.Id, OutboxKinds.SlackRoot, idempotencyKey,
            SlackMessages.Root(deployment, runbook, options.CurrentValue.PublicUrl), now, cancellationToken);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deployment {DeploymentId}: no decision-channel message for its {Type} event, recorded in the audit trail: {Reason}")]
    private static partial void LogNoChannel(ILogger logger, string deploymentId, string type, string reason);

    private static bool IsAnnounced(string type) => type is AuditEventTypes.StateChanged or AuditEventTypes.Evaluation
        or AuditEventTypes.Decision or AuditEventTypes.Refusal or AuditEventTypes.RollbackAction;
}
