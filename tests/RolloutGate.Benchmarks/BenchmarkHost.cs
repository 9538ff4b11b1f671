using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace RolloutGate.Benchmarks;

/// <summary>
/// The real service for a benchmark: a database of its own on the PostgreSQL that run-with-postgres.sh started
/// (ROLLOUTGATE_BENCH_CONNECTION), and the host on Kestrel over loopback HTTP, configured like production.
/// </summary>
public sealed class BenchmarkHost : IAsyncDisposable
{
    private readonly string adminConnection;

    private BenchmarkHost(string adminConnection, string database, WebApplication app, Uri address)
    {
        this.adminConnection = adminConnection;
        Database = database;
        App = app;
        Address = address;
    }

    public string Database { get; }

    public WebApplication App { get; }

    public Uri Address { get; }

    public static string? AdminConnection => Environment.GetEnvironmentVariable("ROLLOUTGATE_BENCH_CONNECTION");

    public static async Task<BenchmarkHost> StartAsync(string adminConnection, IDictionary<string, string?> settings)
    {
        var database = await CreateDatabaseAsync(adminConnection);
        var builder = WebApplication.CreateBuilder(["--urls", "http://127.0.0.1:0"]);
        var all = new Dictionary<string, string?>(settings) { ["ConnectionStrings:RolloutGate"] = database };
        builder.Configuration.AddInMemoryCollection(all);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.AddRolloutGate();
        var app = builder.Build();
        app.MapRolloutGate();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new BenchmarkHost(adminConnection, database, app, new Uri(address));
    }

    public async Task<long> ScalarAsync(string sql)
    {
        await using var db = new NpgsqlConnection(Database);
        await db.OpenAsync();
        await using var command = new NpgsqlCommand(sql, db) { CommandTimeout = 600 };
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var db = new NpgsqlConnection(Database);
        await db.OpenAsync();
        await using var command = new NpgsqlCommand(sql, db) { CommandTimeout = 1200 };
        await command.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(adminConnection);
        await admin.OpenAsync();
        var name = new NpgsqlConnectionStringBuilder(Database).Database;
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", admin);
        await drop.ExecuteNonQueryAsync();
    }

    private static async Task<string> CreateDatabaseAsync(string connection)
    {
        var name = "rg_bench_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new NpgsqlConnection(connection))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(connection) { Database = name, MaxPoolSize = 100 }.ConnectionString;
    }
}
