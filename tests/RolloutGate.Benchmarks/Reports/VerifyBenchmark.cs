using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Npgsql;
using RolloutGate.Core.Audit;

namespace RolloutGate.Benchmarks.Reports;

/// <summary>
/// <c>audit verify</c> over a year of history: the reports benchmark's N audit events (default 1,000,000), given the
/// hashes the service would have given them (chained in id order), then <c>GET /api/v1/audit/verify</c>, which walks the
/// whole chain, asked three times and once with an anchor (the head of an earlier answer), each timed to its full answer.
/// </summary>
public static class VerifyBenchmark
{
    /// <summary>Chains the year <see cref="ReportsBenchmark"/> seeded and times verify over it through <paramref name="http"/> (a reader's client).</summary>
    public static async Task<int> RunAsync(BenchmarkHost host, HttpClient http, int events)
    {
        var chaining = Stopwatch.StartNew();
        await ChainAsync(host);
        var seeded = await host.ScalarAsync("SELECT count(*) FROM audit_events");
        Console.WriteLine($"chained {seeded} audit events in {chaining.Elapsed.TotalSeconds:F0} s");
        Console.WriteLine();
        Console.WriteLine($"command: tests/RolloutGate.Benchmarks/run-with-postgres.sh verify --events {events}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {ReportsBenchmark.CpuModel()}, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");

        using var sampling = new CancellationTokenSource();
        var load = ReportsBenchmark.SampleLoadAsync(sampling.Token);
        var runs = new List<double>();
        string? anchor = null;
        for (var run = 0; run < 4; run++)
        {
            // The fourth asks with the first answer's head as its anchor.
            var path = "/api/v1/audit/verify" + (run == 3 ? $"?anchor={anchor}" : "");
            var started = Stopwatch.GetTimestamp();
            using var document = JsonDocument.Parse(await http.GetStringAsync(new Uri(path, UriKind.Relative)));
            runs.Add(Stopwatch.GetElapsedTime(started).TotalSeconds);
            var root = document.RootElement;
            if (!root.GetProperty("ok").GetBoolean() || root.GetProperty("events").GetInt64() != seeded)
            {
                await Console.Error.WriteLineAsync($"verify did not hold over the seeded chain: {root.GetRawText()}");
                return 1;
            }

            var head = root.GetProperty("head");
            anchor ??= $"{head.GetProperty("id").GetInt64()}:{head.GetProperty("hash").GetString()}";
        }

        await sampling.CancelAsync();
        var loads = await load;
        Console.WriteLine(loads.Count == 0 ? "load average: not available"
            : string.Create(CultureInfo.InvariantCulture, $"load average (1 min) while verify ran: {loads.Min():F2} to {loads.Max():F2}"));
        Console.WriteLine();
        Console.WriteLine("| verify | events | run 1 s | run 2 s | run 3 s | with an anchor s | events a second (best) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| the whole trail | {seeded} | {runs[0]:F1} | {runs[1]:F1} | {runs[2]:F1} | {runs[3]:F1} | {seeded / runs.Min():F0} |"));
        return 0;
    }

    /// <summary>
    /// Gives the seeded events the hashes the service would have given them: they are moved aside, read back in id order,
    /// chained, and copied into the trail again as they are read (two connections), ids and all.
    /// </summary>
    private static async Task ChainAsync(BenchmarkHost host)
    {
        // The append-only triggers refuse the move, rightly; the benchmark's superuser steps around them once.
        await host.ExecuteAsync("""
            CREATE TABLE seeded_trail AS SELECT id, at, type, deployment_id, service, actor, data FROM audit_events;
            SET session_replication_role = replica;
            TRUNCATE audit_events;
            """);
        await using var source = new NpgsqlConnection(host.Database);
        await using var target = new NpgsqlConnection(host.Database);
        await source.OpenAsync();
        await target.OpenAsync();
        await using (var copy = await target.BeginBinaryImportAsync(
            "COPY audit_events (id, at, type, deployment_id, service, actor, data, prev_hash, hash) FROM STDIN (FORMAT BINARY)"))
        await using (var read = new NpgsqlCommand("SELECT id, at, type, deployment_id, service, actor, data FROM seeded_trail ORDER BY id", source))
        await using (var rows = await read.ExecuteReaderAsync())
        {
            var previous = AuditChain.Genesis;
            while (await rows.ReadAsync())
            {
                var chained = new ChainedEvent(rows.GetInt64(0), rows.GetFieldValue<DateTimeOffset>(1), rows.GetString(2),
                    rows.IsDBNull(3) ? null : rows.GetString(3), rows.IsDBNull(4) ? null : rows.GetString(4),
                    rows.IsDBNull(5) ? null : rows.GetString(5), rows.GetString(6));
                var hash = AuditChain.Hash(previous, chained);
                await copy.StartRowAsync();
                await copy.WriteAsync(chained.Id);
                await copy.WriteAsync(chained.At, NpgsqlTypes.NpgsqlDbType.TimestampTz);
                await copy.WriteAsync(chained.Type);
                await copy.WriteAsync(chained.DeploymentId, NpgsqlTypes.NpgsqlDbType.Text);
                await copy.WriteAsync(chained.Service, NpgsqlTypes.NpgsqlDbType.Text);
                await copy.WriteAsync(chained.Actor, NpgsqlTypes.NpgsqlDbType.Text);
                await copy.WriteAsync(chained.Data);
                await copy.WriteAsync(previous);
                await copy.WriteAsync(hash);
                previous = hash;
            }

            await copy.CompleteAsync();
        }

        await host.ExecuteAsync("DROP TABLE seeded_trail");
        await host.ExecuteAsync("VACUUM ANALYZE audit_events");
    }
}
