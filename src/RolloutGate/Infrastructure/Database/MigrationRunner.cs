using System.Data;
using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace RolloutGate.Infrastructure.Database;

/// <summary>
/// Applies the versioned SQL files of <c>migrations/</c> in name order. A session-level advisory lock makes
/// instances that start together take turns, so each file is applied exactly once; every applied file is
/// recorded with its sha256, and a file edited after it was applied stops start-up with its name.
/// </summary>
public sealed partial class MigrationRunner(NpgsqlDataSource dataSource, TimeProvider time, ILogger<MigrationRunner> logger)
{
    /// <summary>Arbitrary but fixed: "RGMIGRAT" as a 64-bit number, so no other advisory lock of ours collides.</summary>
    private const long MigrationLockKey = 0x5247_4D49_4752_4154;

    public async Task<IReadOnlyList<string>> ApplyAsync(string migrationsPath, CancellationToken cancellationToken)
    {
        var files = LoadFiles(migrationsPath);
        await using var connection = await OpenAsync(cancellationToken);
        await ExecuteAsync(connection, "SELECT pg_advisory_lock(@key)", cancellationToken, ("key", MigrationLockKey));
        try
        {
            await ExecuteAsync(connection, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    file        text PRIMARY KEY,
                    sha256      text NOT NULL,
                    applied_at  timestamptz NOT NULL
                )
                """, cancellationToken);

            var applied = await ReadAppliedAsync(connection, cancellationToken);
            await RecordRenamesAsync(connection, applied, files, cancellationToken);
            WarnOfNewerSchema(applied.Keys, files);
            var appliedNow = new List<string>();
            foreach (var file in files)
            {
                if (applied.TryGetValue(file.Name, out var recorded))
                {
                    if (!string.Equals(recorded, file.Sha256, StringComparison.Ordinal))
                    {
                        throw new StartupException(
                            $"migration '{file.Name}' was changed after it was applied (recorded sha256 {recorded}, file now {file.Sha256}); " +
                            "applied migrations are immutable: restore the file and put the change in a new migration");
                    }

                    continue;
                }

                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await using (var apply = new NpgsqlCommand(file.Sql, connection, transaction))
                {
                    try
                    {
                        await apply.ExecuteNonQueryAsync(cancellationToken);
                    }
                    catch (PostgresException ex)
                    {
                        throw new StartupException($"migration '{file.Name}' failed: {ex.MessageText}", ex);
                    }
                }

                await using (var record = new NpgsqlCommand(
                    "INSERT INTO schema_migrations (file, sha256, applied_at) VALUES (@file, @sha, @at)", connection, transaction))
                {
                    record.Parameters.AddWithValue("file", file.Name);
                    record.Parameters.AddWithValue("sha", file.Sha256);
                    record.Parameters.AddWithValue("at", time.GetUtcNow());
                    await record.ExecuteNonQueryAsync(cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
                LogApplied(logger, file.Name);
                appliedNow.Add(file.Name);
            }

            return appliedNow;
        }
        finally
        {
            // A session that ended meanwhile (PostgreSQL ended it, as idle_in_transaction_session_timeout does, or the
            // connection broke) took its lock with it; unlocking through it threw "Connection is not open" in place of
            // why it ended.
            if (connection.State == ConnectionState.Open)
            {
                await ExecuteAsync(connection, "SELECT pg_advisory_unlock(@key)", CancellationToken.None, ("key", MigrationLockKey));
            }
        }
    }

    /// <summary>The first connection of the process: a database that cannot be reached stops start-up with where and why.</summary>
    private async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await dataSource.OpenConnectionAsync(cancellationToken);
        }
        catch (NpgsqlException ex)
        {
            var target = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
            var reason = ex is PostgresException postgres ? postgres.MessageText : ex.InnerException?.Message ?? ex.Message;
            throw new StartupException(
                $"cannot connect to PostgreSQL at {target.Host}:{target.Port} (database '{target.Database}', user '{target.Username}'): {reason}; " +
                "check ConnectionStrings__RolloutGate and that the server is up", ex);
        }
    }

    /// <summary>
    /// A file renamed after it was applied (a number taken twice by work written side by side, renumbered:
    /// 0021_breach_of_min.sql became 0022_breach_of_min.sql) is recorded under its old name. It is the same migration
    /// when its content is: the record takes the new name, so the file is not applied again, and the old name is not
    /// taken for a newer version's migration (which warned at every start that this version does not have it). Where
    /// the file was applied again under its new name before this was known, the old name's record is dropped. A
    /// recorded file whose content is not that of exactly one of this version's files is left as it is.
    /// </summary>
    private async Task RecordRenamesAsync(NpgsqlConnection connection, Dictionary<string, string> applied, List<MigrationFile> files, CancellationToken cancellationToken)
    {
        var known = files.Select(file => file.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (oldName, sha256) in applied.Where(record => !known.Contains(record.Key)).OrderBy(record => record.Key, StringComparer.Ordinal).ToList())
        {
            var renamed = files.Where(file => string.Equals(file.Sha256, sha256, StringComparison.Ordinal)).ToList();
            if (renamed.Count != 1)
            {
                continue;
            }

            var newName = renamed[0].Name;
            var appliedAgain = applied.ContainsKey(newName);
            await ExecuteAsync(connection,
                appliedAgain ? "DELETE FROM schema_migrations WHERE file = @old" : "UPDATE schema_migrations SET file = @new WHERE file = @old",
                cancellationToken, ("new", newName), ("old", oldName));
            applied.Remove(oldName);
            applied[newName] = sha256;
            LogRenamed(logger, oldName, newName, appliedAgain ? "its record under the old name is dropped (it was applied again under the new one)" : "recorded under the new name, not applied again");
        }
    }

    /// <summary>
    /// Migrations recorded in the database that this version does not have were applied by a newer RolloutGate: this
    /// one was rolled back after an upgrade. It starts all the same (refusing would leave no way back but a restore
    /// that loses what was recorded since), but says so: it neither reads nor keeps up what those migrations added.
    /// </summary>
    private void WarnOfNewerSchema(IEnumerable<string> applied, List<MigrationFile> files)
    {
        var known = files.Select(file => file.Name).ToHashSet(StringComparer.Ordinal);
        var unknown = applied.Where(name => !known.Contains(name)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            LogNewerSchema(logger, unknown.Count, string.Join(", ", unknown), files.Count == 0 ? "none" : files[^1].Name);
        }
    }

    private static List<MigrationFile> LoadFiles(string migrationsPath)
    {
        if (!Directory.Exists(migrationsPath))
        {
            throw new StartupException($"the migrations folder '{Path.GetFullPath(migrationsPath)}' does not exist");
        }

        return Directory.EnumerateFiles(migrationsPath, "*.sql")
            .Order(StringComparer.Ordinal)
            .Select(path =>
            {
                var bytes = File.ReadAllBytes(path);
                return new MigrationFile(Path.GetFileName(path), Encoding.UTF8.GetString(bytes), Convert.ToHexStringLower(SHA256.HashData(bytes)));
            })
            .ToList();
    }

    private static async Task<Dictionary<string, string>> ReadAppliedAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var applied = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var command = new NpgsqlCommand("SELECT file, sha256 FROM schema_migrations", connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            applied[reader.GetString(0)] = reader.GetString(1);
        }

        return applied;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Applied migration {File}")]
    private static partial void LogApplied(ILogger logger, string file);

    [LoggerMessage(Level = LogLevel.Information, Message = "Migration {OldFile} was applied under that name and is now {File} (the same content): {Outcome}")]
    private static partial void LogRenamed(ILogger logger, string oldFile, string file, string outcome);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The database has {Count} migration(s) this RolloutGate does not have ({Files}; its newest is {Newest}): " +
        "a newer version migrated it. This one starts, but does not use or keep up what those migrations added; see deploy/README.md, 'Upgrading RolloutGate'")]
    private static partial void LogNewerSchema(ILogger logger, int count, string files, string newest);

    private sealed record MigrationFile(string Name, string Sql, string Sha256);
}
