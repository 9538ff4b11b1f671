using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;

namespace RolloutGate.Core.Tests.Rollbacks;

public sealed class IstioSubsetsTests
{
    private static readonly ServiceHosts Checkout = new("shop", "checkout");

    /// <summary>A DestinationRule as the Kubernetes API lists it.</summary>
    private static JsonObject Rule(string name, string? host, params string[] subsets) => new()
    {
        ["apiVersion"] = "networking.istio.io/v1",
        ["kind"] = "DestinationRule",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "shop" },
        ["spec"] = new JsonObject
        {
            ["host"] = host,
            ["subsets"] = new JsonArray([.. subsets.Select(s => (JsonNode)new JsonObject { ["name"] = s, ["labels"] = new JsonObject { ["version"] = s } })]),
        },
    };

    [Theory]
    [InlineData("checkout")]
    [InlineData("checkout.shop")]
    [InlineData("checkout.shop.svc")]
    [InlineData("checkout.shop.svc.cluster.local")]
    [InlineData("CHECKOUT.Shop.SVC.cluster.local")]
    public void StableSubset_RuleForEveryHostFormOfTheService_DecidesTheSubset(string host)
    {
        Assert.Equal(StableSubsetVerdict.Defined, IstioSubsets.StableSubset([Rule("checkout", host, "stable", "canary")], Checkout, "stable").Verdict);
        Assert.Equal(StableSubsetVerdict.Missing, IstioSubsets.StableSubset([Rule("checkout", host, "canary")], Checkout, "stable").Verdict);
    }

    [Theory]
    [InlineData("checkout-canary")]
    [InlineData("checkout.payments")]
    [InlineData("checkout.payments.svc.cluster.local")]
    [InlineData("checkout.shop.svc.corp.example")]
    [InlineData("*.shop.svc.cluster.local")]
    [InlineData("*")]
    [InlineData(null)]
    public void StableSubset_RuleForAnotherHost_IsNotThisServices(string? host)
    {
        var check = IstioSubsets.StableSubset([Rule("other", host, "canary")], Checkout, "stable");

        Assert.Equal(StableSubsetVerdict.NoDestinationRule, check.Verdict);
        Assert.Equal("no DestinationRule in namespace shop is for service checkout in namespace shop", check.Detail);
    }

    [Fact]
    public void StableSubset_NoRules_NoDestinationRule() =>
        Assert.Equal(StableSubsetVerdict.NoDestinationRule, IstioSubsets.StableSubset([], Checkout, "stable").Verdict);

    [Fact]
    public void StableSubset_Missing_NamesTheRuleAndItsSubsetsForPeopleOnCall()
    {
        var check = IstioSubsets.StableSubset([Rule("checkout", "checkout", "canary", "v2"), Rule("payments", "payments", "stable")], Checkout, "stable");

        Assert.Equal(StableSubsetVerdict.Missing, check.Verdict);
        Assert.Equal("DestinationRule shop/checkout has subsets canary, v2; no 'stable': Envoy would answer 503 to every request routed there; roll this service back by other means", check.Detail);
    }

    [Fact]
    public void StableSubset_DefinedIn_NamesTheRule()
    {
        var check = IstioSubsets.StableSubset([Rule("checkout", "checkout.shop.svc.cluster.local", "stable", "canary")], Checkout, "stable");

        Assert.Equal("DestinationRule shop/checkout defines subset 'stable'", check.Detail);
    }

    [Fact]
    public void StableSubset_SubsetNamesAreCaseSensitive()
    {
        // Istio compares subset names exactly: a runbook's "Stable" is not the rule's "stable".
        var check = IstioSubsets.StableSubset([Rule("checkout", "checkout", "stable")], Checkout, "Stable");

        Assert.Equal(StableSubsetVerdict.Missing, check.Verdict);
        Assert.StartsWith("DestinationRule shop/checkout has subsets stable; no 'Stable'", check.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void StableSubset_TwoRulesForTheService_DefinedWhenEitherDefinesIt()
    {
        // Istio merges the rules of one host in one namespace, subsets included.
        var rules = new[] { Rule("checkout-policy", "checkout"), Rule("checkout-versions", "checkout.shop.svc.cluster.local", "stable", "canary") };

        var check = IstioSubsets.StableSubset(rules, Checkout, "stable");

        Assert.Equal(StableSubsetVerdict.Defined, check.Verdict);
        Assert.Equal("DestinationRule shop/checkout-versions defines subset 'stable'", check.Detail);
    }

    [Fact]
    public void StableSubset_TwoRulesForTheServiceNeitherDefinesIt_NamesBoth()
    {
        var rules = new[] { Rule("checkout-policy", "checkout"), Rule("checkout-versions", "checkout.shop", "canary", "v2") };

        var check = IstioSubsets.StableSubset(rules, Checkout, "stable");

        Assert.Equal(StableSubsetVerdict.Missing, check.Verdict);
        Assert.StartsWith(
            "DestinationRules shop/checkout-policy (no subsets), shop/checkout-versions (subsets canary, v2) are for service checkout in namespace shop; no 'stable'",
            check.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void StableSubset_WorkloadName_CountsAsTheService()
    {
        var service = new ServiceHosts("shop", "checkout-v2", "checkout");

        Assert.Equal(StableSubsetVerdict.Defined, IstioSubsets.StableSubset([Rule("v2", "checkout-v2", "stable")], service, "stable").Verdict);
    }

    [Fact]
    public void StableSubset_MalformedSubsets_AreNoSubsets()
    {
        var rule = Rule("checkout", "checkout");
        rule["spec"]!["subsets"] = new JsonArray(JsonValue.Create("stable"), new JsonObject { ["labels"] = new JsonObject() }, new JsonObject { ["name"] = 7 });

        var check = IstioSubsets.StableSubset([rule], Checkout, "stable");

        Assert.Equal(StableSubsetVerdict.Missing, check.Verdict);
        Assert.StartsWith("DestinationRule shop/checkout has no subsets; no 'stable'", check.Detail, StringComparison.Ordinal);
    }
}
