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
        var announced = appended.Where(a => a.DeploymentId is not null && IsAnnounced(a.Type)).ToList();
        if (announced.Count == 0)
        {
            return;
        }

        // The caller holds the audit lock until it commits, and a sweep appends the events of every watch that regressed at
        // one t at once (hundreds of deployments): the deployments and which have a root are read in one query each, and
        // the messages written in one statement, not a few round trips per deployment.
        var ids = announced.Select(a => a.DeploymentId!).Distinct(StringComparer.Ordinal).ToList();
        var deployments = await db.Deployments.Include(d => d.RunbookVersion).Where(d => ids.Contains(d.Id))
            .ToDictionaryAsync(d => d.Id, StringComparer.Ordinal, cancellationToken);
        var rooted = await SlackOutbox.WithRootAsync(db, ids, cancellationToken);
        var rows = new List<OutboxRow>();
        var now = time.GetUtcNow();
        // A decision and the state change it makes both settle a deployment's buttons: looked up once, by the first of them.
        var settled = new HashSet<string>(StringComparer.Ordinal);
        foreach (var audit in announced)
        {
            if (!deployments.TryGetValue(audit.DeploymentId!, out var deployment))
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
            if (audit.Type == AuditEventTypes.StateChanged)
            {
                rows.Add(Root(deployment, runbook, $"slack:root:{audit.Id}"));
                rooted.Add(deployment.Id);
                // Buttons are for a regressed deployment (and a failed action's retry): any other move settles them.
                if (SlackMessages.SettledByState(audit.Data) is { } moved && settled.Add(deployment.Id))
                {
                    await SettleAsync(db, rows, deployment.Id, moved, now, cancellationToken);
                }

                continue;
            }

            if (audit.Type == AuditEventTypes.Decision && settled.Add(deployment.Id))
            {
                await SettleAsync(db, rows, deployment.Id, SlackMessages.SettledByDecision(audit.Actor, audit.Data), now, cancellationToken);
            }

            var publicUrl = options.CurrentValue.PublicUrl;
            var reply = audit.Type switch
            {
                AuditEventTypes.Evaluation => SlackMessages.VerdictChanged(channel, deployment, audit.Data, publicUrl),
                AuditEventTypes.Decision => SlackMessages.Decision(channel, deployment.Id, audit.Actor, audit.Data, publicUrl),
                AuditEventTypes.Refusal => SlackMessages.Refusal(channel, deployment.Id, audit.Actor, audit.Data, publicUrl),
                _ => SlackMessages.RollbackAction(channel, deployment.Id, deployment.State, audit.Data, publicUrl),
            };
            AddReply(rows, rooted, deployment, runbook, reply, $"slack:reply:{audit.Id}");
        }

        await SlackOutbox.EnqueueAllAsync(db, rows, now, cancellationToken);
    }

    /// <summary>
    /// Thread replies, in the order given; a deployment's root message is enqueued before its first reply when it has none
    /// yet (or only ones given up), so a thread exists and a reply is never posted loose in the channel. That root is keyed
    /// by the reply: a reply delivered again enqueues nothing twice. Which deployments have a root is read in one query and
    /// the messages written in one statement.
    /// </summary>
    public async Task EnqueueRepliesAsync(RolloutGateDbContext db, IReadOnlyList<ChannelReply> replies, CancellationToken cancellationToken)
    {
        if (replies.Count == 0)
        {
            return;
        }

        var rooted = await SlackOutbox.WithRootAsync(db, [.. replies.Select(r => r.Deployment.Id)], cancellationToken);
        var rows = new List<OutboxRow>();
        foreach (var (deployment, runbook, reply, idempotencyKey) in replies)
        {
            AddReply(rows, rooted, deployment, runbook, reply, idempotencyKey);
        }

        await SlackOutbox.EnqueueAllAsync(db, rows, time.GetUtcNow(), cancellationToken);
    }

    /// <param name="rooted">The deployments with a root message, this one's added once its root is enqueued.</param>
    private void AddReply(List<OutboxRow> rows, HashSet<string> rooted, DeploymentRow deployment, Runbook runbook, OutboxMessage reply, string idempotencyKey)
    {
        if (rooted.Add(deployment.Id))
        {
            rows.Add(Root(deployment, runbook, $"slack:root:before:{idempotencyKey}"));
        }

        rows.Add(new OutboxRow(deployment.Id, OutboxKinds.SlackReply, idempotencyKey, reply));
    }

    /// <summary>Settles the deployment's replies with buttons, after writing the rows so far: one of them may be such a reply.</summary>
    private static async Task SettleAsync(RolloutGateDbContext db, List<OutboxRow> rows, string deploymentId, string note, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        await SlackOutbox.EnqueueAllAsync(db, rows, now, cancellationToken);
        rows.Clear();
        await SlackOutbox.EnqueueSettlesAsync(db, deploymentId, note, now, cancellationToken);
    }

    private OutboxRow Root(DeploymentRow deployment, Runbook runbook, string idempotencyKey) =>
        new(deployment.Id, OutboxKinds.SlackRoot, idempotencyKey, SlackMessages.Root(deployment, runbook, options.CurrentValue.PublicUrl));

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deployment {DeploymentId}: no decision-channel message for its {Type} event, recorded in the audit trail: {Reason}")]
    private static partial void LogNoChannel(ILogger logger, string deploymentId, string type, string reason);

    private static bool IsAnnounced(string type) => type is AuditEventTypes.StateChanged or AuditEventTypes.Evaluation
        or AuditEventTypes.Decision or AuditEventTypes.Refusal or AuditEventTypes.RollbackAction;
}

/// <summary>A thread reply for <see cref="DecisionChannelSubscriber.EnqueueRepliesAsync"/>, written once per idempotency key.</summary>
public sealed record ChannelReply(DeploymentRow Deployment, Runbook Runbook, OutboxMessage Reply, string IdempotencyKey);
