using Microsoft.EntityFrameworkCore;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Deployments;

/// <summary>
/// Which request runs a new <c>predeploy</c>'s runbook checks: the one that claims its delivery id in
/// <c>webhook_delivery_claims</c> (migration 0027). The checks run before the webhook's transaction, for up to the runbook's
/// <c>preDeploy.timeout</c>, and a retry of the delivery arriving meanwhile (a CD system retrying after its own time-out),
/// on this replica or another, ran them again. A retry now finds the claim and waits for the first answer, polling every
/// <see cref="PollInterval"/> with no connection held in between (a lock held for the checks would hold a pooled
/// connection as long, and the checks run outside any transaction so that a slow endpoint holds none; see
/// <see cref="PreDeployGate"/>). The claim is a lease on the database's clock, as the rollback dispatcher's are: released
/// when its request is done, whatever the outcome, and taken over once it has run out, the checks' timeout and
/// <see cref="LeaseMargin"/> after it was taken: a replica killed while its checks ran releases nothing, and the retry
/// then runs the checks itself rather than waiting for ever or being told a verdict that was never reached. Should a lease
/// run out under a request that is still deciding, the answer is still the first one stored: the delivery row's key
/// decides that, as before this claim.
/// </summary>
public sealed partial class DeliveryClaims(RolloutGateDbContext db, TimeProvider time, ILogger<DeliveryClaims> logger)
{
    /// <summary>How often a retry waiting for the request that runs the checks looks again.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>How long a claim whose lease ran out stays before a release clears it (<see cref="ReleaseAsync"/>).</summary>
    public static readonly TimeSpan ExpiredClaimsKept = TimeSpan.FromHours(1);

    /// <summary>What a lease allows beyond the checks' timeout: the transaction that decides and stores the answer.</summary>
    public static readonly TimeSpan LeaseMargin = TimeSpan.FromSeconds(15);

    /// <summary>
    /// This request's claim to run the checks of <paramref name="deliveryId"/>, taken once no other request holds a live
    /// one; null, at once or after waiting, when the delivery id or <paramref name="deploymentId"/> is on record: the
    /// delivery is answered without its checks (the first answer again, or a conflict).
    /// </summary>
    public async Task<DeliveryClaim?> ClaimAsync(string deliveryId, string deploymentId, TimeSpan checksTimeout, CancellationToken cancellationToken)
    {
        var holder = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
        var lease = checksTimeout + LeaseMargin;
        var waited = false;
        while (true)
        {
            // The claim is tried before the record is read: a request storing the first answer releases its claim after
            // its commit, so a claim taken here is taken after that answer is readable, and the read below sees it. Not
            // cut by the caller hanging up: a claim taken all the same but never known here would hold retries for its lease.
            var taken = await db.Database.SqlQuery<TakeOver>($"""
                WITH previous AS (SELECT claimed_by FROM webhook_delivery_claims WHERE delivery_id = {deliveryId})
                INSERT INTO webhook_delivery_claims (delivery_id, claimed_by, claimed_until)
                VALUES ({deliveryId}, {holder}, clock_timestamp() + {lease})
                ON CONFLICT (delivery_id) DO UPDATE SET claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until
                WHERE webhook_delivery_claims.claimed_until <= clock_timestamp()
                RETURNING (SELECT claimed_by FROM previous) AS "TakenOverFrom"
                """).ToListAsync(CancellationToken.None);
            var claim = taken.Count == 0 ? null : new DeliveryClaim(this, deliveryId, holder);
            bool onRecord;
            try
            {
                onRecord = await db.Database.SqlQuery<bool>($"""
                    SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE delivery_id = {deliveryId})
                        OR EXISTS (SELECT 1 FROM deployments WHERE id = {deploymentId}) AS "Value"
                    """).SingleAsync(cancellationToken);
            }
            catch
            {
                await (claim?.DisposeAsync() ?? ValueTask.CompletedTask);
                throw;
            }

            if (onRecord)
            {
                await (claim?.DisposeAsync() ?? ValueTask.CompletedTask);
                return null;
            }

            if (claim is not null)
            {
                if (taken[0].TakenOverFrom is { } previous)
                {
                    LogTakenOver(logger, deliveryId, previous);
                }

                return claim;
            }

            if (!waited)
            {
                LogWaiting(logger, deliveryId);
                waited = true;
            }

            await Task.Delay(PollInterval, time, cancellationToken);
        }
    }

    /// <summary>Ends the claim of <paramref name="holder"/>; one it no longer holds (taken over) is left to its new holder.</summary>
    internal async Task ReleaseAsync(string deliveryId, string holder)
    {
        try
        {
            // Not cut by the request's cancellation: a retry waits for this release, or for the lease to run out. Claims whose
            // lease ran out an hour ago go too: a replica killed while its checks ran leaves one, which only a retry of that
            // delivery would take over, and an expired claim is worth no more than none (kept an hour so that a retry can
            // still say whose claim it took over).
            await db.Database.ExecuteSqlAsync($"""
                DELETE FROM webhook_delivery_claims
                WHERE (delivery_id = {deliveryId} AND claimed_by = {holder}) OR claimed_until < clock_timestamp() - {ExpiredClaimsKept}
                """, CancellationToken.None);
        }
        catch (Exception ex)
        {
            // What failed is told the caller already (the answer or the error that ended the request); a retry of this
            // delivery waits for the lease to run out instead, then runs the checks itself.
            LogReleaseFailed(logger, deliveryId, ex);
        }
    }

    private sealed record TakeOver(string? TakenOverFrom);

    [LoggerMessage(Level = LogLevel.Information, Message = "Delivery {DeliveryId} is being answered by another request, which runs its pre-deploy checks; waiting for its answer")]
    private static partial void LogWaiting(ILogger logger, string deliveryId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Delivery {DeliveryId}: the claim of {Holder} on its pre-deploy checks ran out without an answer, that request or its replica stopped or died; running the checks here")]
    private static partial void LogTakenOver(ILogger logger, string deliveryId, string holder);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Delivery {DeliveryId}: its claim on the pre-deploy checks could not be released; a retry takes it over when its lease runs out")]
    private static partial void LogReleaseFailed(ILogger logger, string deliveryId, Exception exception);
}

/// <summary>
/// A request's claim on a delivery's pre-deploy checks (<see cref="DeliveryClaims"/>), held until disposed, after the
/// request's transaction.
/// </summary>
public sealed class DeliveryClaim : IAsyncDisposable
{
    private readonly DeliveryClaims claims;
    private readonly string deliveryId;
    private readonly string holder;
    private bool held = true;

    internal DeliveryClaim(DeliveryClaims claims, string deliveryId, string holder)
    {
        this.claims = claims;
        this.deliveryId = deliveryId;
        this.holder = holder;
    }

    public async ValueTask DisposeAsync()
    {
        if (held)
        {
            held = false;
            await claims.ReleaseAsync(deliveryId, holder);
        }
    }
}
