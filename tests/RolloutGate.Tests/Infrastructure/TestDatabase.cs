using Npgsql;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// A fresh PostgreSQL database on the server that deploy/local/test.sh started, dropped again at the end.
/// The service connects as the unprivileged 'rolloutgate' role; <see cref="AdminConnectionString"/> is a superuser
/// connection to the same database, for tests that play an attacker or inspect the catalogue.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private static readonly string AdminBase = Require("ROLLOUTGATE_TEST_ADMIN_CONNECTION");
    private static readonly string AppBase = Require("ROLLOUTGATE_TEST_CONNECTION");

    private TestDatabase(string name)
    {
        Name = name;
        ConnectionString = new NpgsqlConnectionStringBuilder(AppBase) { Database = name, Pooling = true, MaxPoolSize = 60 }.ConnectionString;
        AdminConnectionString = new NpgsqlConnectionStringBuilder(AdminBase) { Database = name, Pooling = false }.ConnectionString;
    }

    public string Name { get; }

    public string ConnectionString { get; }

    public string AdminConnectionString { get; }

    public static async Task<TestDatabase> CreateAsync()
    {
        var name = "rg_test_" + Guid.NewGuid().ToString("N")[..12];
        await using (var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(AdminBase) { Pooling = false }.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name} OWNER rolloutgate", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new TestDatabase(name);
    }

    public async Task<T?> ScalarAsync<T>(string sql, bool asAdmin = false)
    {
        await using var connection = new NpgsqlConnection(asAdmin ? AdminConnectionString : ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? default : (T)Convert.ChangeType(value, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task ExecuteAsync(string sql, bool asAdmin = false)
    {
        await using var connection = new NpgsqlConnection(asAdmin ? AdminConnectionString : ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(AdminBase) { Pooling = false }.ConnectionString);
        await admin.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", admin);
        await drop.ExecuteNonQueryAsync();
    }

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable)
        ?? throw new InvalidOperationException(
            $"{variable} is not set: run the tests through deploy/local/test.sh, which starts PostgreSQL and sets it");
}
