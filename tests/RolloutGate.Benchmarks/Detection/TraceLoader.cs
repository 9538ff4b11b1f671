using System.Globalization;
using System.Text.Json;
using RolloutGate.Core.Analysis;

namespace RolloutGate.Benchmarks.Detection;

/// <summary>Reads the shared traces (never copied into the repository) into <see cref="Trace"/>s.</summary>
internal static class TraceLoader
{
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    /// <summary>How long an injected Nezha fault is taken to disturb the metrics after its injection.</summary>
    private static readonly TimeSpan FaultEffect = TimeSpan.FromMinutes(20);

    /// <summary>
    /// Loads the traces; <paramref name="nabBaseline"/> is the runbook's <c>watch.baseline</c> for the NAB traces (the
    /// protocol as written uses 24 h; 7 d lets the detector see the week). Nezha has one day and keeps its 2 h windows.
    /// </summary>
    public static IReadOnlyList<Trace> Load(string dataDirectory, TimeSpan nabBaseline)
    {
        var nab = Path.Combine(dataDirectory, "nab");
        using var windowsJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(nab, "combined_windows.json")));
        Trace Nab(string file, string name, MetricKind kind) => new(
            name, kind, TimeSpan.FromMinutes(5), ReadNab(Path.Combine(nab, file)),
            windowsJson.RootElement.GetProperty(file).EnumerateArray()
                .Select(w => (ParseUtc(w[0].GetString()!), ParseUtc(w[1].GetString()!))).ToList(),
            nabBaseline, Day, TimeSpan.FromHours(1), nabBaseline == Day
                ? "protocol as written: 24 h baseline, 24 h watch, 288 looks"
                : $"runbook baseline {Describe(nabBaseline)} (watch.baseline), 24 h watch, 288 looks; deploy times need baseline and watch free of labelled anomalies");

        var traces = new List<Trace>
        {
            Nab("realKnownCause/ec2_request_latency_system_failure.csv", "nab ec2 latency", MetricKind.Latency),
            Nab("realAWSCloudwatch/elb_request_count_8c0756.csv", "nab elb request count", MetricKind.CostPerRequest),
            Nab("realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv", "nab rds cpu", MetricKind.CostPerRequest),
            Nab("realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv", "nab ec2 cpu", MetricKind.CostPerRequest),
        };
        traces.AddRange(LoadNezha(Path.Combine(dataDirectory, "nezha", "online-boutique-2022-08-22")));
        return traces;
    }

    /// <summary>
    /// Nezha holds one day (03:51 to 23:59 UTC) whose faults (<c>fault_list.json</c>, one about every 8 minutes) were all
    /// injected between 03:53 and 07:53; there is no "yesterday". Each fault is a labelled anomaly window from its
    /// injection to <see cref="FaultEffect"/> later (the front end's latency still shows the last fault 8 to 12 minutes
    /// after it), so the deploy times kept lie in the fault-free 16 hours after the last one: 2 h baseline, 2 h watch
    /// (120 looks at 1 min), a deploy every 10 minutes. Request counts are the front-end pod's workload (ops/s) × 60.
    /// </summary>
    private static IEnumerable<Trace> LoadNezha(string directory)
    {
        var front = ReadCsv(Path.Combine(directory, "front_service.csv"));
        var pod = ReadCsv(Path.Combine(directory, "frontend-579b9bff58-t2dbm_metric.csv"))
            .GroupBy(r => Minute(r["TimeStamp"])).ToDictionary(g => g.Key, g => g.First());
        using var faultsJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "fault_list.json")));
        var faults = faultsJson.RootElement.EnumerateObject()
            .SelectMany(hour => hour.Value.EnumerateArray())
            .Select(f => DateTimeOffset.FromUnixTimeSeconds(long.Parse(f.GetProperty("inject_timestamp").GetString()!, CultureInfo.InvariantCulture)))
            .Select(at => (at, at + FaultEffect))
            .ToList();
        var latency = new List<Observation>();
        var errors = new List<Observation>();
        var cost = new List<Observation>();
        foreach (var row in front)
        {
            var minute = Minute(row["TimeStamp"]);
            var at = DateTimeOffset.FromUnixTimeSeconds(minute * 60);
            if (!pod.TryGetValue(minute, out var podRow) || (latency.Count > 0 && latency[^1].At >= at))
            {
                continue;
            }

            var workload = Number(podRow["PodWorkload(Ops)"]);
            var requests = (long)Math.Round(workload * 60);
            latency.Add(new Observation(at, Number(row["LatencyP95(s)"]), requests));
            var errorRate = Math.Clamp(1 - Number(row["SuccessRate(%)"]) / 100, 0, 1);
            errors.Add(new Observation(at, errorRate, requests, (long)Math.Round(errorRate * requests)));
            cost.Add(new Observation(at, workload > 0 ? Number(podRow["CpuUsage(m)"]) / workload : null, requests));
        }

        const string note = "adapted: one day, faults injected 03:53-07:53 excluded (each labelled from injection to +20 min); " +
            "deploys in the fault-free 16 h after them; no yesterday, so 2 h baseline, 2 h watch, 120 looks";
        Trace Nezha(string name, MetricKind kind, List<Observation> points) =>
            new(name, kind, TimeSpan.FromMinutes(1), points, faults, TimeSpan.FromHours(2), TimeSpan.FromHours(2), TimeSpan.FromMinutes(10), note);
        yield return Nezha("nezha front p95 latency", MetricKind.Latency, latency);
        yield return Nezha("nezha front error rate", MetricKind.ErrorRate, errors);
        yield return Nezha("nezha front cpu per request", MetricKind.CostPerRequest, cost);
    }

    private static string Describe(TimeSpan span) =>
        span.TotalHours % 24 == 0 ? $"{span.TotalDays:0} d" : $"{span.TotalHours:0.#} h";

    private static long Minute(string unixSeconds) => (long)Math.Round(Number(unixSeconds) / 60);

    private static double Number(string text) => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseUtc(string text) =>
        new(DateTime.SpecifyKind(DateTime.Parse(text, CultureInfo.InvariantCulture), DateTimeKind.Utc));

    private static List<Observation> ReadNab(string path) =>
        File.ReadLines(path).Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split(','))
            .Select(f => new Observation(ParseUtc(f[0]), Number(f[1])))
            .DistinctBy(o => o.At) // a few NAB timestamps repeat; a look happens once per interval
            .ToList();

    private static List<Dictionary<string, string>> ReadCsv(string path)
    {
        var lines = File.ReadLines(path).Where(l => l.Length > 0).ToList();
        var header = lines[0].Split(',');
        return lines.Skip(1)
            .Select(l => l.Split(','))
            .Select(f => header.Zip(f).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal))
            .ToList();
    }
}
