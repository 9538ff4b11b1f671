using Npgsql;

namespace RolloutGate.Benchmarks;

/// <summary>A fresh database per benchmark run on the server of ROLLOUTGATE_BENCH_CONNECTION, dropped afterwards.</summary>
public static class BenchmarkDatabase
{
    /// <summary>Creates the database; returns its connection string (pool of 100).</summary>
    public static async Task<string> CreateAsync(string connection, string prefix)
    {
        var name = prefix + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new NpgsqlConnection(connection))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(connection) { Database = name, MaxPoolSize = 100 }.ConnectionString;
    }

    public static async Task DropAsync(string connection, string database)
    {
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(connection);
        await admin.OpenAsync();
        var name = new NpgsqlConnectionStringBuilder(database).Database;
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", admin);
        await drop.ExecuteNonQueryAsync();
    }
}
