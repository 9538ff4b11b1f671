using Npgsql;
using Quartz.Impl.AdoJobStore;
using Quartz.Impl.AdoJobStore.Common;

namespace RolloutGate.Watch;

/// <summary>
/// The job store's row lock (<c>SELECT ... FOR UPDATE</c> on <c>qrtz_locks</c>), as Quartz's PostgreSQL handler takes it,
/// without its retries inside the transaction the failed statement was in. Quartz's handler tries the statement three
/// times, a second apart, in one transaction; in PostgreSQL a failed statement aborts its transaction, so after a lock
/// wait that outlasted the command timeout (the row held by a replica lost mid-round, until PostgreSQL ends its session:
/// DatabaseExtensions.LostClientOptions) both retries failed at once with 25P02 ("current transaction is aborted"), even
/// when the row was free again by then, and the job store was told of that error instead of the timeout. 25P02 is not a
/// transient failure to Quartz: it gave up on the operation for its DbRetryInterval (15 s), and while the sweep's
/// completion waited so did the sweep. Here the first failure ends the attempt with its own cause, so a timeout (transient)
/// is retried by the job store a second later in a transaction of its own, which takes the lock as soon as it is free,
/// and says so (<see cref="QuartzOutageLogging"/> writes its message as the reason of the throttled line).
/// </summary>
public sealed partial class JobStoreLockHandler(IDbProvider dbProvider, ILogger<JobStoreLockHandler> logger)
    : PostgreSqlSelectForUpdateLockHandler(dbProvider)
{
    protected override async ValueTask ExecuteSql(Guid requestorId, ConnectionAndTransactionHolder conn, string lockName,
        string expandedSql, string expandedInsertSql, CancellationToken cancellationToken = default)
    {
        try
        {
            if (await LockRowAsync(conn, lockName, expandedSql, cancellationToken))
            {
                return;
            }

            // The first lock of a new database makes the row. An insert beside it waits for that one's transaction and
            // inserts nothing; the row is committed then, and a statement of its own (read committed) sees and locks it.
            LogInserting(logger, lockName, requestorId);
            if (await ExecuteAsync(conn, lockName, expandedInsertSql, cancellationToken) == 1
                || await LockRowAsync(conn, lockName, expandedSql, cancellationToken))
            {
                return;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogNotObtained(logger, lockName, requestorId, ex.Message);
            throw new LockException(ex is NpgsqlException { InnerException: TimeoutException }
                ? $"the job store's lock '{lockName}' was not obtained within the command timeout: another session holds it, as a replica lost in the middle of a round does until PostgreSQL ends its session"
                : $"Failure obtaining db row lock: {ex.Message}", ex);
        }

        throw new LockException($"No row exists, and one could not be inserted in table {TablePrefix}LOCKS for lock named: {lockName}");
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Inserting new lock row for lock: '{LockName}' being obtained by: {RequestorId}")]
    private static partial void LogInserting(ILogger logger, string lockName, Guid requestorId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Lock '{LockName}' was not obtained by: {RequestorId} ({Reason}); the job store tries again in a new transaction")]
    private static partial void LogNotObtained(ILogger logger, string lockName, Guid requestorId, string reason);

    private async Task<bool> LockRowAsync(ConnectionAndTransactionHolder conn, string lockName, string sql, CancellationToken cancellationToken)
    {
        await using var command = Prepare(conn, lockName, sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken);
    }

    private async Task<int> ExecuteAsync(ConnectionAndTransactionHolder conn, string lockName, string sql, CancellationToken cancellationToken)
    {
        await using var command = Prepare(conn, lockName, sql);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private System.Data.Common.DbCommand Prepare(ConnectionAndTransactionHolder conn, string lockName, string sql)
    {
        var command = PrepareCommand(conn, sql);
        AddCommandParameter(command, "schedulerName", SchedulerName);
        AddCommandParameter(command, "lockName", lockName);
        return command;
    }
}
