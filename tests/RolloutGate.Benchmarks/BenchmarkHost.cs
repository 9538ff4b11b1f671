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
        var database = await BenchmarkDatabase.CreateAsync(adminConnection, "rg_bench_");
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
        await BenchmarkDatabase.DropAsync(adminConnection, Database);
    }
}
