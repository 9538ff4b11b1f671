using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>Clashes between files are reported against the later file, at the line that has to change.</summary>
public sealed class RunbookConflictsTests
{
    [Fact]
    public void Find_NameUsedByAnotherFile_ReportsTheLineOfMetadataName()
    {
        var first = Parse("cart.yaml", Runbook(name: "cart", service: "cart"));
        var second = Parse("dupsvc.yaml", Runbook(name: "cart", service: "dupsvc"));

        var error = Assert.Single(RunbookConflicts.Find([first, second]));

        Assert.Equal(
            "dupsvc.yaml:6: runbook name 'cart' is already used by cart.yaml; each runbook needs its own metadata.name",
            error.ToString());
    }

    [Fact]
    public void Find_ServiceAndEnvironmentGovernedByAnotherFile_ReportsTheLineOfSpecService()
    {
        var first = Parse("cart.yaml", Runbook(name: "cart", service: "cart"));
        var second = Parse("cart-two.yaml", Runbook(name: "cart-two", service: "cart"));

        var error = Assert.Single(RunbookConflicts.Find([first, second]));

        Assert.Equal(
            "cart-two.yaml:10: service 'cart' in environment 'production' is already governed by cart.yaml; one runbook per service and environment",
            error.ToString());
    }

    private static (string File, Runbook Runbook) Parse(string file, string yaml)
    {
        var result = RunbookParser.Parse(yaml, file);
        Assert.Empty(result.Errors);
        return (file, result.Runbook!);
    }

    /// <summary>A comment and a blank line first, so that neither line is the first of the file.</summary>
    private static string Runbook(string name, string service) => $"""
        # yaml-language-server: $schema=./schema.json

        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: {name}
          version: 1
        spec:
          owner: U1
          service: {service}
          environments: [production]
          decisionChannel: C1
          mesh:
            provider: none
          watch:
            metrics:
              - name: depth
                query: vector(5)
                max: 1

        """;
}
