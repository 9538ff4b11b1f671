using Npgsql;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// A lock the test takes in a transaction of its own (a row FOR UPDATE, a table), held until released (nothing changed)
/// or committed with another actor's change: whoever needs it meanwhile waits, which <see cref="WaitForWaitersAsync"/>
/// sees in PostgreSQL. A race is forced this way rather than hoped for.
/// </summary>
public sealed class DatabaseHold : IAsyncDisposable
{
    private readonly TestDatabase database;
    private readonly string what;
    private readonly NpgsqlConnection connection;
    private readonly NpgsqlTransaction transaction;

    private DatabaseHold(TestDatabase database, string what, NpgsqlConnection connection, NpgsqlTransaction transaction, object? taken)
    {
        this.database = database;
        this.what = what;
        this.connection = connection;
        this.transaction = transaction;
        Taken = taken;
    }

    /// <summary>What the statement that took the lock answered (its first column of its first row).</summary>
    public object? Taken { get; }

    /// <summary>Runs <paramref name="sql"/>, which takes <paramref name="what"/>, as the superuser in a new transaction.</summary>
    public static async Task<DatabaseHold> TakeAsync(TestDatabase database, string what, string sql, params NpgsqlParameter[] parameters)
    {
        var connection = new NpgsqlConnection(database.AdminConnectionString);
        await connection.OpenAsync();
        var transaction = await connection.BeginTransactionAsync();
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        command.Parameters.AddRange(parameters);
        return new DatabaseHold(database, what, connection, transaction, await command.ExecuteScalarAsync());
    }

    /// <summary>
    /// Returns once <paramref name="count"/> sessions wait for a lock (or fails after <paramref name="seconds"/>): the second
    /// in line waits for the first, so waiting sessions are counted, not only those waiting for the hold.
    /// </summary>
    public Task WaitForWaitersAsync(int count, int seconds = 10) => SlackTestService.EventuallyAsync(
        async () => await database.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0", asAdmin: true) >= count,
        $"{count} sessions waiting for {what}", seconds);

    public Task ReleaseAsync() => transaction.RollbackAsync();

    /// <summary>Runs <paramref name="sql"/> in the hold's transaction, as another actor's change, and commits it.</summary>
    public async Task CommitAsync(string sql)
    {
        await using (var command = new NpgsqlCommand(sql, connection, transaction))
        {
            await command.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await transaction.DisposeAsync();
        await connection.DisposeAsync();
    }
}
