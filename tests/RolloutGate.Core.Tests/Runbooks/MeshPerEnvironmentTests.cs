using RolloutGate.Core.Runbooks;
using RolloutGate.Core.Watch;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>
/// <c>{{ environment }}</c> in <c>mesh.namespace</c> and <c>mesh.workload</c> (runbooks/README.md, <c>spec.mesh</c>): a
/// namespace per environment, checked for every listed environment when the runbook is loaded, and rendered for the
/// change's environment wherever the mesh is addressed.
/// </summary>
public sealed class MeshPerEnvironmentTests
{
    private static string Runbook(string @namespace = "shop-{{ environment }}", string workload = "cart", string environments = "[staging, production]") => $$$"""
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: cart
          version: 1
        spec:
          service: cart
          environments: {{{environments}}}
          owner: U1
          decisionChannel: C1
          mesh:
            provider: istio
            namespace: {{{@namespace}}}
            workload: {{{workload}}}
          preDeploy:
            checks:
              - name: error-budget
                prometheus:
                  query: sum(rate(istio_requests_total{destination_workload_namespace="{{ namespace }}",destination_workload="{{ workload }}"}[10m]))
                  max: 100
          watch:
            metrics:
              - name: error-rate
                preset: error-rate
                max: 2%
          rollback:
            action:
              istio:
                virtualService: cart
                stableSubset: stable
        """;

    [Fact]
    public void Parse_NamespacePerEnvironment_LoadsAsWrittenAndRendersForEachEnvironment()
    {
        var runbook = QueryPlaceholdersTests.Valid(Runbook());

        Assert.Equal(new RunbookMesh(MeshProvider.Istio, "shop-{{ environment }}", "cart"), runbook.Mesh);
        Assert.Equal(new MeshSpec(MeshProvider.Istio, "shop-staging", "cart"), runbook.Mesh.For("staging"));
        Assert.Equal(new MeshSpec(MeshProvider.Istio, "shop-production", "cart"), runbook.Mesh.For("production"));
        var staging = QueryPlaceholders.ForEnvironment(runbook, "staging");
        Assert.Equal(new RunbookMesh(MeshProvider.Istio, "shop-staging", "cart"), staging.Mesh);
        Assert.Equal(
            "sum(rate(istio_requests_total{destination_workload_namespace=\"shop-staging\",destination_workload=\"cart\"}[10m]))",
            staging.PreDeploy.Checks.Single().Prometheus!.Query);
        Assert.Contains(
            "destination_workload_namespace=\"shop-production\"",
            MetricQueries.For(runbook.Watch.Metrics.Single(), runbook.Mesh.For("production"), TimeSpan.FromMinutes(1)).Value,
            StringComparison.Ordinal);
        Assert.True(QueryPlaceholders.UsesEnvironment(runbook with { PreDeploy = new PreDeploySpec(TimeSpan.FromSeconds(30), []) }));
    }

    [Fact]
    public void Parse_WorkloadPerEnvironment_RendersToo()
    {
        var runbook = QueryPlaceholdersTests.Valid(Runbook(@namespace: "shop", workload: "cart-{{environment}}"));

        Assert.Equal(new MeshSpec(MeshProvider.Istio, "shop", "cart-staging"), runbook.Mesh.For("staging"));
    }

    [Fact]
    public void Parse_NoPlaceholders_TheMeshAsWrittenForEveryEnvironment()
    {
        var runbook = QueryPlaceholdersTests.Valid(Runbook(@namespace: "shop"));

        Assert.Equal(new MeshSpec(MeshProvider.Istio, "shop", "cart"), runbook.Mesh.For("staging"));
        Assert.Equal(runbook.Mesh, QueryPlaceholders.ForEnvironment(runbook, "staging").Mesh);
        Assert.False(runbook.Mesh.UsesEnvironment);
    }

    [Theory]
    [InlineData("[staging, Prod]", "'Prod'", "'shop-Prod'")]
    [InlineData("[staging, eu_west]", "'eu_west'", "'shop-eu_west'")]
    [InlineData("[staging, '-']", "'-'", "'shop--'")]
    [InlineData("[staging, aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]", "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'", "'shop-aaaa")]
    public void Parse_NamespaceNotADnsLabelForOneEnvironment_RefusedAtTheNamespaceNamingIt(string environments, string environment, string rendered)
    {
        var error = Assert.Single(QueryPlaceholdersTests.Errors(Runbook(environments: environments)));

        Assert.Equal(13, error.Line);
        Assert.StartsWith($"mesh.namespace 'shop-{{{{ environment }}}}' is {rendered}", error.Reason, StringComparison.Ordinal);
        Assert.Contains($"for environment {environment}, which is not a Kubernetes namespace name, a DNS label", error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("namespace", "shop-{{ namespace }}", "mesh.namespace has {{ namespace }}, which stands for mesh.namespace itself: only {{ environment }} may stand here")]
    [InlineData("namespace", "{{ workload }}", "mesh.namespace has {{ workload }}, which stands for mesh.workload itself: only {{ environment }} may stand here")]
    [InlineData("workload", "cart-{{ workload }}", "mesh.workload has {{ workload }}, which stands for mesh.workload itself: only {{ environment }} may stand here")]
    [InlineData("namespace", "shop-{{ service }}", "mesh.namespace has the unknown placeholder {{ service }}: only {{ environment }} may stand here")]
    [InlineData("namespace", "shop-{{ environment", "mesh.namespace has '{{' that does not open a placeholder ('{{ environment'): write {{ environment }}, the only placeholder here")]
    public void Parse_OtherPlaceholderInTheMesh_RefusedAtItsField(string field, string value, string reason)
    {
        var yaml = field == "namespace" ? Runbook(@namespace: $"'{value}'") : Runbook(workload: $"'{value}'");

        var error = Assert.Single(QueryPlaceholdersTests.Errors(yaml));

        Assert.Equal(field == "namespace" ? 13 : 14, error.Line);
        Assert.Equal(reason, error.Reason);
    }
}
