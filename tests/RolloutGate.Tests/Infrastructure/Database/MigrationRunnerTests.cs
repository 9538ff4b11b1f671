using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using RolloutGate.Core.Analysis;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Infrastructure.Database;

public sealed class MigrationRunnerTests : IDisposable
{
    /// <summary>A copy of the repository's migrations, which a test may add to or edit.</summary>
    private readonly TemporaryFolder copy = CopyMigrations();

    private string Migrations => copy.Folder;

    public void Dispose() => copy.Dispose();

    [Fact]
    public async Task Apply_TwoInstancesAtOnce_EachFileAppliedOnce()
    {
        await using var database = await TestDatabase.CreateAsync();

        var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
            return await Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None);
        })));

        var fileCount = Directory.GetFiles(Migrations, "*.sql").Length;
        Assert.Equal(fileCount, runs.Sum(applied => applied.Count));
        Assert.Equal(fileCount, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations"));
    }

    [Fact]
    public async Task Apply_AppliedFileEditedLater_StopsNamingTheFile()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        await Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None);

        var first = Directory.GetFiles(Migrations, "*.sql").Order(StringComparer.Ordinal).First();
        await File.AppendAllTextAsync(first, "\n-- an innocent-looking edit\n");

        var error = await Assert.ThrowsAsync<StartupException>(() => Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None));
        Assert.Contains(Path.GetFileName(first), error.Message, StringComparison.Ordinal);
        Assert.Contains("changed after it was applied", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Apply_NewFileAfterFirstRun_AppliesOnlyTheNewFile()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        await Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None);

        await File.WriteAllTextAsync(Path.Combine(Migrations, "9999_test_extra.sql"), "CREATE TABLE test_extra (id int);");
        var applied = await Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None);

        Assert.Equal(["9999_test_extra.sql"], applied);
    }

    [Fact]
    public async Task Apply_DatabaseMigratedByANewerVersion_StartsAndWarnsNamingWhatItDoesNotHave()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        await Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None);
        var newest = Directory.GetFiles(Migrations, "*.sql").Select(Path.GetFileName).Order(StringComparer.Ordinal).Last();
        using var quiet = new LogCapture();
        Assert.Empty(await Runner(dataSource, quiet).ApplyAsync(Migrations, CancellationToken.None));
        Assert.DoesNotContain(quiet.Lines, line => line.StartsWith("Warning", StringComparison.Ordinal));

        // A rollback of RolloutGate itself: the database was migrated by a version with a file this one does not have.
        await database.ExecuteAsync("INSERT INTO schema_migrations (file, sha256, applied_at) VALUES ('9999_from_a_newer_version.sql', 'x', now())");
        using var logs = new LogCapture();
        var applied = await Runner(dataSource, logs).ApplyAsync(Migrations, CancellationToken.None);

        Assert.Empty(applied);
        var warning = Assert.Single(logs.Lines, line => line.StartsWith("Warning", StringComparison.Ordinal));
        Assert.Contains("1 migration(s) this RolloutGate does not have (9999_from_a_newer_version.sql", warning, StringComparison.Ordinal);
        Assert.Contains($"its newest is {newest}", warning, StringComparison.Ordinal);
        Assert.Equal(1L, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations WHERE file = '9999_from_a_newer_version.sql'"));
    }

    [Fact]
    public async Task Apply_FileRenamedAfterItWasApplied_RecordedUnderItsNewNameWithoutApplyingItAgainOrWarning()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        await Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None);
        // As the versions from 514b75a to 8c6a32c recorded it: breach_of_min was 0021, renumbered 0022 with the same content.
        await database.ExecuteAsync("UPDATE schema_migrations SET file = '0021_breach_of_min.sql' WHERE file = '0022_breach_of_min.sql'");

        using var logs = new LogCapture();
        var applied = await Runner(dataSource, logs).ApplyAsync(Migrations, CancellationToken.None);

        Assert.Empty(applied);
        Assert.DoesNotContain(logs.Lines, line => line.StartsWith("Warning", StringComparison.Ordinal));
        Assert.Contains(logs.Lines, line => line.Contains("0021_breach_of_min.sql was applied under that name and is now 0022_breach_of_min.sql", StringComparison.Ordinal));
        Assert.Equal(0L, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations WHERE file = '0021_breach_of_min.sql'"));
        Assert.Equal(1L, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations WHERE file = '0022_breach_of_min.sql'"));

        // Upgraded before the rename was known: the file was applied again as 0022, and both names are recorded.
        await database.ExecuteAsync("""
            INSERT INTO schema_migrations (file, sha256, applied_at)
            SELECT '0021_breach_of_min.sql', sha256, applied_at FROM schema_migrations WHERE file = '0022_breach_of_min.sql'
            """);
        using var twice = new LogCapture();
        Assert.Empty(await Runner(dataSource, twice).ApplyAsync(Migrations, CancellationToken.None));
        Assert.DoesNotContain(twice.Lines, line => line.StartsWith("Warning", StringComparison.Ordinal));
        Assert.Contains(twice.Lines, line => line.Contains("its record under the old name is dropped", StringComparison.Ordinal));
        Assert.Equal(0L, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations WHERE file = '0021_breach_of_min.sql'"));

        // A file of another content under a name this version does not have is still a newer version's.
        await database.ExecuteAsync("INSERT INTO schema_migrations (file, sha256, applied_at) VALUES ('0023_from_a_newer_version.sql', 'x', now())");
        using var later = new LogCapture();
        Assert.Empty(await Runner(dataSource, later).ApplyAsync(Migrations, CancellationToken.None));
        Assert.Contains(later.Lines, line => line.Contains("1 migration(s) this RolloutGate does not have (0023_from_a_newer_version.sql", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Apply_BrokenFile_StopsWithItsNameAndRecordsNothing()
    {
        await using var database = await TestDatabase.CreateAsync();
        await File.WriteAllTextAsync(Path.Combine(Migrations, "9999_broken.sql"), "CREATE TABLE broken (id int; -- syntax error");
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);

        var error = await Assert.ThrowsAsync<StartupException>(() => Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None));

        Assert.Contains("9999_broken.sql", error.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations WHERE file = '9999_broken.sql'"));
    }

    [Fact]
    public async Task Apply_SessionEndedMidMigration_StopsWithWhyNotWithConnectionIsNotOpen()
    {
        // PostgreSQL ends the session inside a migration's transaction, as its idle_in_transaction_session_timeout, a
        // restart or a broken connection does: start-up stops saying why, not only "Connection is not open" (the unlock's).
        await using var database = await TestDatabase.CreateAsync();
        await File.WriteAllTextAsync(Path.Combine(Migrations, "9999_session_ended.sql"), "SELECT pg_terminate_backend(pg_backend_pid());");
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);

        var error = await Assert.ThrowsAsync<StartupException>(() => Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None));

        Assert.Contains("migration '9999_session_ended.sql' failed: terminating connection due to administrator command", error.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations WHERE file = '9999_session_ended.sql'"));
    }

    [Fact]
    public async Task CompactBaselines_JsonSamplesStoredBefore_ConvertedInOrderWithTheirNulls()
    {
        await using var database = await TestDatabase.CreateAsync();
        var compact = Path.Combine(Migrations, "0008_compact_baselines.sql");
        var later = Path.Combine(Path.GetDirectoryName(Migrations)!, Path.GetFileName(Migrations) + "-0008.sql");
        File.Move(compact, later);
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        await Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None);
        await database.ExecuteAsync("""
            INSERT INTO runbook_versions (name, version, sha256, content, file_path, loaded_at) VALUES ('svc', 1, 'x', '', 'svc.yaml', now());
            INSERT INTO deployments (id, service, environment, state, runbook_version_id, created_at, updated_at)
            SELECT 'dep-' || n, 'svc', 'production', 'watching', (SELECT id FROM runbook_versions), now(), now() FROM generate_series(1, 2) n;
            INSERT INTO watch_baselines (deployment_id, metric, captured_at, samples) VALUES
              ('dep-1', 'error-rate', now(), '[{"at":"2026-11-23T10:01:00+00:00","value":0.01,"requests":1200,"errors":12},
                                              {"at":"2026-11-23T10:02:00+00:00","value":null,"requests":0,"errors":null},
                                              {"at":"2026-11-23T12:03:00+02:00","value":0.5,"requests":4,"errors":2}]'),
              ('dep-1', 'p95-latency', now(), '[{"at":"2026-11-23T10:01:00+00:00","value":0.25,"requests":1200,"errors":null}]'),
              ('dep-2', 'p95-latency', now(), '[]');
            """);

        File.Move(later, compact);
        Assert.Equal(["0008_compact_baselines.sql"], await Runner(dataSource).ApplyAsync(Migrations, CancellationToken.None));

        async Task<Observation[]> StoredAsync(string deploymentId, string metric) => StoredSamples.Decode((await database.ScalarAsync<byte[]>(
            $"SELECT samples FROM watch_baselines WHERE deployment_id = '{deploymentId}' AND metric = '{metric}'"))!);
        var at = new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
        Assert.Equal(
            [new Observation(at.AddMinutes(1), 0.01, 1200, 12), new Observation(at.AddMinutes(2), null, 0), new Observation(at.AddMinutes(3), 0.5, 4, 2)],
            await StoredAsync("dep-1", "error-rate"));
        Assert.Equal([new Observation(at.AddMinutes(1), 0.25, 1200)], await StoredAsync("dep-1", "p95-latency"));
        Assert.Empty(await StoredAsync("dep-2", "p95-latency"));
        Assert.Equal("bytea", await database.ScalarAsync<string>(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'watch_baselines' AND column_name = 'samples'"));
        // lz4 on this server (Debian's PostgreSQL is built with it), for the baselines stored from now on.
        Assert.Equal("l", await database.ScalarAsync<string>(
            "SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'watch_baselines'::regclass AND attname = 'samples'"));
    }

    private static MigrationRunner Runner(NpgsqlDataSource dataSource, LogCapture? logs = null) =>
        new(dataSource, TimeProvider.System, logs is null ? NullLogger<MigrationRunner>.Instance : new Logger<MigrationRunner>(new LoggerFactory([logs])));

    private static TemporaryFolder CopyMigrations()
    {
        var target = new TemporaryFolder("rg-Migrations-");
        foreach (var file in Directory.GetFiles(TestPaths.RepositoryFile("migrations"), "*.sql"))
        {
            File.Copy(file, Path.Combine(target.Folder, Path.GetFileName(file)));
        }

        return target;
    }
}
