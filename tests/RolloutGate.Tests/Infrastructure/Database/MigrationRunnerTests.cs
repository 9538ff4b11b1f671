using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Infrastructure.Database;

public sealed class MigrationRunnerTests
{
    [Fact]
    public async Task Apply_TwoInstancesAtOnce_EachFileAppliedOnce()
    {
        await using var database = await TestDatabase.CreateAsync();
        var migrations = CopyMigrations();

        var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
            return await Runner(dataSource).ApplyAsync(migrations, CancellationToken.None);
        })));

        var fileCount = Directory.GetFiles(migrations, "*.sql").Length;
        Assert.Equal(fileCount, runs.Sum(applied => applied.Count));
        Assert.Equal(fileCount, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations"));
    }

    [Fact]
    public async Task Apply_AppliedFileEditedLater_StopsNamingTheFile()
    {
        await using var database = await TestDatabase.CreateAsync();
        var migrations = CopyMigrations();
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        await Runner(dataSource).ApplyAsync(migrations, CancellationToken.None);

        var first = Directory.GetFiles(migrations, "*.sql").Order(StringComparer.Ordinal).First();
        await File.AppendAllTextAsync(first, "\n-- an innocent-looking edit\n");

        var error = await Assert.ThrowsAsync<StartupException>(() => Runner(dataSource).ApplyAsync(migrations, CancellationToken.None));
        Assert.Contains(Path.GetFileName(first), error.Message, StringComparison.Ordinal);
        Assert.Contains("changed after it was applied", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Apply_NewFileAfterFirstRun_AppliesOnlyTheNewFile()
    {
        await using var database = await TestDatabase.CreateAsync();
        var migrations = CopyMigrations();
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        await Runner(dataSource).ApplyAsync(migrations, CancellationToken.None);

        await File.WriteAllTextAsync(Path.Combine(migrations, "9999_test_extra.sql"), "CREATE TABLE test_extra (id int);");
        var applied = await Runner(dataSource).ApplyAsync(migrations, CancellationToken.None);

        Assert.Equal(["9999_test_extra.sql"], applied);
    }

    [Fact]
    public async Task Apply_BrokenFile_StopsWithItsNameAndRecordsNothing()
    {
        await using var database = await TestDatabase.CreateAsync();
        var migrations = CopyMigrations();
        await File.WriteAllTextAsync(Path.Combine(migrations, "9999_broken.sql"), "CREATE TABLE broken (id int; -- syntax error");
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);

        var error = await Assert.ThrowsAsync<StartupException>(() => Runner(dataSource).ApplyAsync(migrations, CancellationToken.None));

        Assert.Contains("9999_broken.sql", error.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations WHERE file = '9999_broken.sql'"));
    }

    private static MigrationRunner Runner(NpgsqlDataSource dataSource) =>
        new(dataSource, TimeProvider.System, NullLogger<MigrationRunner>.Instance);

    private static string CopyMigrations()
    {
        var target = Directory.CreateTempSubdirectory("rg-migrations-").FullName;
        foreach (var file in Directory.GetFiles(TestPaths.RepositoryFile("migrations"), "*.sql"))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }

        return target;
    }
}
