using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;

namespace RolloutGate.Core.Tests.Rollbacks;

public sealed class StableTrafficTests
{
    private static JsonArray Parse(string json) => JsonNode.Parse(json)!.AsArray();

    private static void AssertJson(string expected, JsonNode actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), actual), $"expected {expected}\nactual   {actual.ToJsonString()}");

    [Fact]
    public void IstioHttpRoutes_CanarySplit_KeepsOnlyStableAtFullWeight()
    {
        var http = Parse("""
            [{"name":"primary","route":[
              {"destination":{"host":"checkout","subset":"stable","port":{"number":8080}},"weight":90,"headers":{"response":{"set":{"x-v":"s"}}}},
              {"destination":{"host":"checkout","subset":"canary","port":{"number":8080}},"weight":10}]}]
            """);

        var shift = StableTraffic.IstioHttpRoutes(http, "stable");

        Assert.True(shift.Changed);
        Assert.Null(shift.Problem);
        AssertJson("""
            [{"name":"primary","route":[
              {"destination":{"host":"checkout","subset":"stable","port":{"number":8080}},"weight":100,"headers":{"response":{"set":{"x-v":"s"}}}}]}]
            """, shift.Updated);
        Assert.Equal(2, http[0]!["route"]!.AsArray().Count);
    }

    [Fact]
    public void IstioHttpRoutes_RoutesWithMatchBlocks_RewritesEachSplitRouteAndKeepsMatches()
    {
        var http = Parse("""
            [{"match":[{"headers":{"x-canary":{"exact":"1"}}}],"route":[{"destination":{"host":"checkout","subset":"canary"}}]},
             {"match":[{"uri":{"prefix":"/api"}}],"timeout":"5s","route":[
               {"destination":{"host":"checkout","subset":"stable"},"weight":50},
               {"destination":{"host":"checkout","subset":"canary"},"weight":50}]},
             {"route":[{"destination":{"host":"checkout","subset":"stable"}}]}]
            """);

        var shift = StableTraffic.IstioHttpRoutes(http, "stable");

        Assert.True(shift.Changed);
        Assert.Equal(3, shift.Rewritten);
        AssertJson("""
            [{"match":[{"headers":{"x-canary":{"exact":"1"}}}],"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]},
             {"match":[{"uri":{"prefix":"/api"}}],"timeout":"5s","route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]},
             {"route":[{"destination":{"host":"checkout","subset":"stable"}}]}]
            """, shift.Updated);
    }

    [Fact]
    public void IstioHttpRoutes_NoStableDestination_ReusesFirstHostAndPortWithStableSubset()
    {
        var http = Parse("""
            [{"route":[{"destination":{"host":"checkout.shop.svc.cluster.local","subset":"canary","port":{"number":80}},"weight":100}]}]
            """);

        var shift = StableTraffic.IstioHttpRoutes(http, "stable");

        AssertJson("""
            [{"route":[{"destination":{"host":"checkout.shop.svc.cluster.local","port":{"number":80},"subset":"stable"},"weight":100}]}]
            """, shift.Updated);
    }

    [Theory]
    [InlineData("""[{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]}]""")]
    [InlineData("""[{"route":[{"destination":{"host":"checkout","subset":"stable"}}]}]""")]
    public void IstioHttpRoutes_AlreadyAllStable_IsUnchanged(string json)
    {
        var shift = StableTraffic.IstioHttpRoutes(Parse(json), "stable");

        Assert.False(shift.Changed);
        Assert.Equal(1, shift.Rewritten);
    }

    [Fact]
    public void IstioHttpRoutes_RedirectRoute_IsLeftAlone()
    {
        var http = Parse("""
            [{"match":[{"uri":{"exact":"/old"}}],"redirect":{"uri":"/new"}},
             {"route":[{"destination":{"host":"checkout","subset":"canary"}}]}]
            """);

        var shift = StableTraffic.IstioHttpRoutes(http, "stable");

        Assert.Equal(1, shift.Untouched);
        Assert.True(JsonNode.DeepEquals(http[0], shift.Updated[0]));
    }

    [Fact]
    public void HttpRouteRules_CanarySplit_StableFullWeightOthersZeroAndKept()
    {
        var rules = Parse("""
            [{"matches":[{"path":{"type":"PathPrefix","value":"/"}}],"backendRefs":[
               {"name":"checkout-stable","port":8080,"weight":80},{"name":"checkout-canary","port":8080,"weight":20}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"assets","port":80}]}]
            """);

        var shift = StableTraffic.HttpRouteRules(rules, "checkout-stable");

        Assert.True(shift.Changed);
        Assert.Equal(1, shift.Rewritten);
        Assert.Equal(1, shift.Untouched);
        AssertJson("""
            [{"matches":[{"path":{"type":"PathPrefix","value":"/"}}],"backendRefs":[
               {"name":"checkout-stable","port":8080,"weight":100},{"name":"checkout-canary","port":8080,"weight":0}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"assets","port":80}]}]
            """, shift.Updated);
    }

    [Fact]
    public void HttpRouteRules_NoRuleListsStable_IsRefused()
    {
        var shift = StableTraffic.HttpRouteRules(Parse("""[{"backendRefs":[{"name":"checkout-canary","weight":1}]}]"""), "checkout-stable");

        Assert.False(shift.Changed);
        Assert.Contains("checkout-stable", shift.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void HttpRouteRules_AlreadyAllStable_IsUnchanged()
    {
        var shift = StableTraffic.HttpRouteRules(
            Parse("""[{"backendRefs":[{"name":"checkout-stable","weight":100},{"name":"checkout-canary","weight":0}]}]"""), "checkout-stable");

        Assert.False(shift.Changed);
        Assert.Null(shift.Problem);
    }

    [Fact]
    public void TrafficSplitBackends_CanarySplit_StableFullWeightOthersZero()
    {
        var shift = StableTraffic.TrafficSplitBackends(
            Parse("""[{"service":"checkout-v1","weight":90},{"service":"checkout-v2","weight":10}]"""), "checkout-v1");

        Assert.True(shift.Changed);
        AssertJson("""[{"service":"checkout-v1","weight":100},{"service":"checkout-v2","weight":0}]""", shift.Updated);
    }

    [Fact]
    public void TrafficSplitBackends_StableMissing_IsRefused()
    {
        var shift = StableTraffic.TrafficSplitBackends(Parse("""[{"service":"checkout-v2","weight":100}]"""), "checkout-v1");

        Assert.NotNull(shift.Problem);
        Assert.False(shift.Changed);
    }
}
