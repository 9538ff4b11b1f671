namespace RolloutGate.Benchmarks;

/// <summary>The runbooks the benchmarks write: an Istio service in production, with what each benchmark adds to its spec.</summary>
internal static class BenchmarkRunbook
{
    /// <summary>The runbook's owner, who may decide in Slack.</summary>
    public const string Owner = "U024BE7LH";

    /// <summary>A spec's rollback section: recommended in the decision channel, carried out by the stand-in's webhook.</summary>
    public static string RecommendedRollback(string standIn) => $"""
        rollback:
          mode: recommend
          action:
            webhook:
              url: {standIn}/rollback
              secret: benchmark-rollback-secret
        """;

    /// <param name="service">The service, also the runbook's name and the Istio workload.</param>
    /// <param name="namespace">The workload's namespace.</param>
    /// <param name="spec">The rest of the spec (watch, rollback), written from column 0 as if it stood alone.</param>
    public static string Istio(string service, string @namespace, string spec) => $"""
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: {service}
          version: 1
        spec:
          service: {service}
          environments: [production]
          owner: {Owner}
          decisionChannel: C0DECIDE01
          mesh:
            provider: istio
            namespace: {@namespace}
            workload: {service}

        """ + string.Concat(spec.Split('\n').Select(line => line.Length == 0 ? "\n" : "  " + line + "\n"));
}
