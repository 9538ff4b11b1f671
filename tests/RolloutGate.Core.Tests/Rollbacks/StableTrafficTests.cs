using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;

namespace RolloutGate.Core.Tests.Rollbacks;

public sealed class StableTrafficTests
{
    private static JsonArray Parse(string json) => JsonNode.Parse(json)!.AsArray();

    private static readonly ServiceHosts Checkout = new("shop", "checkout");

    private static JsonObject Http(JsonArray http) => new() { ["http"] = http };

    private static JsonObject Spec(string json) => JsonNode.Parse(json)!.AsObject();

    private static void AssertJson(string expected, JsonNode actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), actual), $"expected {expected}\nactual   {actual.ToJsonString()}");

    /// <summary>A rewrite that changed something: how many entries it moved to stable and left alone, and the list it wrote.</summary>
    private static void AssertRewritten(StableTrafficShift shift, int rewritten, int untouched, string expected)
    {
        Assert.True(shift.Changed);
        Assert.Null(shift.Problem);
        Assert.Equal(rewritten, shift.Rewritten);
        Assert.Equal(untouched, shift.Untouched);
        AssertJson(expected, shift.Updated);
    }

    [Fact]
    public void IstioHttpRoutes_CanarySplit_KeepsOnlyStableAtFullWeight()
    {
        var http = Parse("""
            [{"name":"primary","route":[
              {"destination":{"host":"checkout","subset":"stable","port":{"number":8080}},"weight":90,"headers":{"response":{"set":{"x-v":"s"}}}},
              {"destination":{"host":"checkout","subset":"canary","port":{"number":8080}},"weight":10}]}]
            """);

        var shift = StableTraffic.IstioHttpRoutes(Http(http), Checkout, "stable");

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

        var shift = StableTraffic.IstioHttpRoutes(Http(http), Checkout, "stable");

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

        var shift = StableTraffic.IstioHttpRoutes(Http(http), Checkout, "stable");

        AssertJson("""
            [{"route":[{"destination":{"host":"checkout.shop.svc.cluster.local","port":{"number":80},"subset":"stable"},"weight":100}]}]
            """, shift.Updated);
    }

    [Theory]
    [InlineData("""[{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]}]""")]
    [InlineData("""[{"route":[{"destination":{"host":"checkout","subset":"stable"}}]}]""")]
    public void IstioHttpRoutes_AlreadyAllStable_IsUnchanged(string json)
    {
        var shift = StableTraffic.IstioHttpRoutes(Http(Parse(json)), Checkout, "stable");

        Assert.False(shift.Changed);
        Assert.Equal(1, shift.Rewritten);
    }

    [Fact]
    public void IstioHttpRoutes_MirrorsToTheCanary_AreRemoved_OthersKept()
    {
        // Flagger's blue/green with mirroring, and a route that also mirrors to an analytics service and to the canary.
        var http = Parse("""
            [{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}],
              "mirror":{"host":"checkout","subset":"canary"},"mirrorPercentage":{"value":100}},
             {"match":[{"uri":{"prefix":"/api"}}],"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}],
              "mirrors":[{"destination":{"host":"analytics.shop.svc.cluster.local"},"percentage":{"value":5}},
                         {"destination":{"host":"checkout.shop.svc.cluster.local","subset":"canary"},"percentage":{"value":50}}]},
             {"match":[{"uri":{"prefix":"/cart"}}],"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}],
              "mirrors":[{"destination":{"host":"checkout","subset":"canary"}}]},
             {"match":[{"uri":{"prefix":"/audit"}}],"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}],
              "mirror":{"host":"checkout","subset":"stable"}}]
            """);

        var shift = StableTraffic.IstioHttpRoutes(Http(http), Checkout, "stable");

        Assert.True(shift.Changed);
        Assert.Null(shift.Problem);
        AssertJson("""
            [{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]},
             {"match":[{"uri":{"prefix":"/api"}}],"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}],
              "mirrors":[{"destination":{"host":"analytics.shop.svc.cluster.local"},"percentage":{"value":5}}]},
             {"match":[{"uri":{"prefix":"/cart"}}],"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]},
             {"match":[{"uri":{"prefix":"/audit"}}],"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}],
              "mirror":{"host":"checkout","subset":"stable"}}]
            """, shift.Updated);
    }

    [Fact]
    public void IstioHttpRoutes_RedirectRoute_IsLeftAlone()
    {
        var http = Parse("""
            [{"match":[{"uri":{"exact":"/old"}}],"redirect":{"uri":"/new"}},
             {"route":[{"destination":{"host":"checkout","subset":"canary"}}]}]
            """);

        var shift = StableTraffic.IstioHttpRoutes(Http(http), Checkout, "stable");

        Assert.Equal(1, shift.Untouched);
        Assert.True(JsonNode.DeepEquals(http[0], shift.Updated[0]));
    }

    [Theory]
    [InlineData("checkout")]
    [InlineData("checkout.shop")]
    [InlineData("checkout.shop.svc")]
    [InlineData("checkout.shop.svc.cluster.local")]
    [InlineData("Checkout.Shop.Svc.Cluster.Local")]
    public void ServiceHosts_ShortNameAndFqdnsInTheNamespace_AreThisService(string host) =>
        Assert.True(Checkout.Matches(host));

    [Theory]
    [InlineData("checkout-canary")]
    [InlineData("checkout.payments")]
    [InlineData("checkout.payments.svc.cluster.local")]
    [InlineData("checkout.shop.svc.corp.example")]
    [InlineData("cdn.shop.svc.cluster.local")]
    [InlineData("checkout.example.com")]
    [InlineData(null)]
    public void ServiceHosts_OtherNamesNamespacesAndDomains_AreNotThisService(string? host) =>
        Assert.False(Checkout.Matches(host));

    [Fact]
    public void ServiceHosts_WorkloadAndServiceNames_BothCount()
    {
        var hosts = new ServiceHosts("shop", "checkout-v2", "checkout", null);

        Assert.True(hosts.Matches("checkout-v2.shop.svc.cluster.local"));
        Assert.True(hosts.Matches("checkout"));
        Assert.Equal("service checkout-v2 or checkout in namespace shop", hosts.Name);
    }

    [Fact]
    public void IstioHttpRoutes_RouteToAnotherHost_IsLeftExactlyAsItWas()
    {
        var spec = Spec("""
            {"http":[
              {"match":[{"uri":{"prefix":"/static"}}],"route":[{"destination":{"host":"cdn.shop.svc.cluster.local"}}]},
              {"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":90},{"destination":{"host":"checkout","subset":"canary"},"weight":10}]}]}
            """);

        var shift = StableTraffic.IstioHttpRoutes(spec, Checkout, "stable");

        Assert.Null(shift.Problem);
        Assert.True(shift.Changed);
        Assert.Equal(1, shift.Rewritten);
        Assert.Equal(1, shift.Untouched);
        AssertJson("""
            [{"match":[{"uri":{"prefix":"/static"}}],"route":[{"destination":{"host":"cdn.shop.svc.cluster.local"}}]},
             {"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]}]
            """, shift.Updated);
    }

    [Fact]
    public void IstioHttpRoutes_SplitByHostWithoutSubsets_IsRefusedNamingTheRoute()
    {
        var spec = Spec("""
            {"http":[
              {"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":90},{"destination":{"host":"checkout","subset":"canary"},"weight":10}]},
              {"name":"split","route":[{"destination":{"host":"checkout","port":{"number":80}},"weight":80},
                                       {"destination":{"host":"checkout-canary","port":{"number":80}},"weight":20}]}]}
            """);

        var shift = StableTraffic.IstioHttpRoutes(spec, Checkout, "stable");

        Assert.False(shift.Changed);
        Assert.Equal(
            "http route 'split' (http[1]) sends traffic to checkout without a subset, so it cannot be moved to subset 'stable'; roll this service back by other means",
            shift.Problem);
        AssertJson(spec["http"]!.ToJsonString(), shift.Updated);
    }

    [Fact]
    public void IstioHttpRoutes_SplitBetweenOtherHostsOnly_IsRefusedAsNoRouteOfThisService()
    {
        var spec = Spec("""
            {"http":[{"route":[{"destination":{"host":"checkout-canary"},"weight":20},{"destination":{"host":"checkout-stable"},"weight":80}]}]}
            """);

        var shift = StableTraffic.IstioHttpRoutes(spec, Checkout, "stable");

        Assert.False(shift.Changed);
        Assert.Equal("no http route sends traffic to service checkout in namespace shop (its routes send to checkout-canary, checkout-stable)", shift.Problem);
    }

    [Fact]
    public void IstioHttpRoutes_TcpOnly_IsRefusedNamingTheTcpRoute()
    {
        var spec = Spec("""
            {"tcp":[{"match":[{"port":5432}],"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":50},
                                                     {"destination":{"host":"checkout","subset":"canary"},"weight":50}]}]}
            """);

        var shift = StableTraffic.IstioHttpRoutes(spec, Checkout, "stable");

        Assert.False(shift.Changed);
        Assert.Equal(0, shift.Rewritten);
        Assert.Equal(
            "tcp route tcp[0] sends traffic to service checkout in namespace shop; the istio action rewrites http routes only, so roll this service back by other means",
            shift.Problem);
    }

    [Fact]
    public void IstioHttpRoutes_TlsRouteToAnotherHost_DoesNotStopTheHttpRewrite()
    {
        var spec = Spec("""
            {"tls":[{"match":[{"sniHosts":["db.example.com"]}],"route":[{"destination":{"host":"db.example.com"}}]}],
             "http":[{"route":[{"destination":{"host":"checkout","subset":"canary"}}]}]}
            """);

        var shift = StableTraffic.IstioHttpRoutes(spec, Checkout, "stable");

        Assert.Null(shift.Problem);
        AssertJson("""[{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]}]""", shift.Updated);
    }

    [Fact]
    public void IstioHttpRoutes_NoHttpRoutes_IsRefused()
    {
        var shift = StableTraffic.IstioHttpRoutes(Spec("""{"hosts":["checkout"]}"""), Checkout, "stable");

        Assert.Equal("no http route sends traffic to service checkout in namespace shop", shift.Problem);
    }

    [Fact]
    public void HttpRouteRules_CanarySplit_StableFullWeightOthersZeroAndKept()
    {
        var rules = Parse("""
            [{"matches":[{"path":{"type":"PathPrefix","value":"/"}}],"backendRefs":[
               {"name":"checkout-stable","port":8080,"weight":80},{"name":"checkout-canary","port":8080,"weight":20}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"assets","port":80}]}]
            """);

        AssertRewritten(StableTraffic.HttpRouteRules(rules, "shop", "checkout-stable"), rewritten: 1, untouched: 1, """
            [{"matches":[{"path":{"type":"PathPrefix","value":"/"}}],"backendRefs":[
               {"name":"checkout-stable","port":8080,"weight":100},{"name":"checkout-canary","port":8080,"weight":0}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"assets","port":80}]}]
            """);
    }

    [Fact]
    public void HttpRouteRules_RuleToTheCanaryOnly_GetsTheStableBackendAtFullWeight()
    {
        // Testers' header-matched rule sends to the canary only; the catch-all rule splits stable and canary.
        var rules = Parse("""
            [{"matches":[{"headers":[{"name":"x-canary","value":"1"}]}],"backendRefs":[{"name":"checkout-canary","port":8080}]},
             {"backendRefs":[
               {"name":"checkout-stable","kind":"Service","port":8080,"weight":90,"filters":[{"type":"RequestHeaderModifier"}]},
               {"name":"checkout-canary","port":8080,"weight":10}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"assets","port":80}]}]
            """);

        AssertRewritten(StableTraffic.HttpRouteRules(rules, "shop", "checkout-stable"), rewritten: 2, untouched: 1, """
            [{"matches":[{"headers":[{"name":"x-canary","value":"1"}]}],"backendRefs":[
               {"name":"checkout-canary","port":8080,"weight":0},{"kind":"Service","name":"checkout-stable","port":8080,"weight":100}]},
             {"backendRefs":[
               {"name":"checkout-stable","kind":"Service","port":8080,"weight":100,"filters":[{"type":"RequestHeaderModifier"}]},
               {"name":"checkout-canary","port":8080,"weight":0}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"assets","port":80}]}]
            """);
    }

    [Fact]
    public void HttpRouteRules_NoRuleListsStable_IsRefused()
    {
        var shift = StableTraffic.HttpRouteRules(Parse("""[{"backendRefs":[{"name":"checkout-canary","weight":1}]}]"""), "shop", "checkout-stable");

        Assert.False(shift.Changed);
        Assert.Contains("checkout-stable", shift.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void HttpRouteRules_AlreadyAllStable_IsUnchanged()
    {
        var shift = StableTraffic.HttpRouteRules(
            Parse("""[{"backendRefs":[{"name":"checkout-stable","weight":100},{"name":"checkout-canary","weight":0}]}]"""), "shop", "checkout-stable");

        Assert.False(shift.Changed);
        Assert.Null(shift.Problem);
    }

    [Fact]
    public void HttpRouteRules_MirrorsToTheCanary_AreRemoved_OthersKept()
    {
        // A rule-level mirror to the canary (percent) beside a header filter, mirrors to analytics and to stable, a
        // backendRef-level mirror to the canary (fraction), and the testers' rule mirroring to the canary by namespace.
        var rules = Parse("""
            [{"filters":[{"type":"RequestHeaderModifier","requestHeaderModifier":{"set":[{"name":"x-v","value":"1"}]}},
                         {"type":"RequestMirror","requestMirror":{"backendRef":{"name":"checkout-canary","port":8080},"percent":50}},
                         {"type":"RequestMirror","requestMirror":{"backendRef":{"name":"analytics","namespace":"data","port":80}}},
                         {"type":"RequestMirror","requestMirror":{"backendRef":{"name":"checkout-stable","port":8080}}}],
              "backendRefs":[
               {"name":"checkout-stable","port":8080,"weight":90,"filters":[
                 {"type":"RequestMirror","requestMirror":{"backendRef":{"name":"checkout-canary","port":8080},"fraction":{"numerator":1,"denominator":4}}}]},
               {"name":"checkout-canary","port":8080,"weight":10}]},
             {"matches":[{"headers":[{"name":"x-canary","value":"1"}]}],
              "filters":[{"type":"RequestMirror","requestMirror":{"backendRef":{"kind":"Service","name":"checkout-canary","namespace":"shop","port":8080}}}],
              "backendRefs":[{"name":"checkout-stable","port":8080,"weight":100}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"assets","port":80}]}]
            """);

        AssertRewritten(StableTraffic.HttpRouteRules(rules, "shop", "checkout-stable"), rewritten: 2, untouched: 1, """
            [{"filters":[{"type":"RequestHeaderModifier","requestHeaderModifier":{"set":[{"name":"x-v","value":"1"}]}},
                         {"type":"RequestMirror","requestMirror":{"backendRef":{"name":"analytics","namespace":"data","port":80}}},
                         {"type":"RequestMirror","requestMirror":{"backendRef":{"name":"checkout-stable","port":8080}}}],
              "backendRefs":[{"name":"checkout-stable","port":8080,"weight":100},{"name":"checkout-canary","port":8080,"weight":0}]},
             {"matches":[{"headers":[{"name":"x-canary","value":"1"}]}],"backendRefs":[{"name":"checkout-stable","port":8080,"weight":100}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"assets","port":80}]}]
            """);
    }

    [Fact]
    public void HttpRouteRules_AllStableButAMirrorToTheCanary_IsChanged()
    {
        var rules = Parse("""
            [{"filters":[{"type":"RequestMirror","requestMirror":{"backendRef":{"name":"checkout-canary"}}}],
              "backendRefs":[{"name":"checkout-stable","weight":100},{"name":"checkout-canary","weight":0}]}]
            """);

        AssertRewritten(StableTraffic.HttpRouteRules(rules, "shop", "checkout-stable"), rewritten: 1, untouched: 0, """
            [{"backendRefs":[{"name":"checkout-stable","weight":100},{"name":"checkout-canary","weight":0}]}]
            """);
    }

    [Theory]
    [InlineData("""{"name":"checkout-stable","namespace":"shop"}""")]
    [InlineData("""{"name":"checkout-stable","kind":"Service","group":""}""")]
    [InlineData("""{"name":"checkout-stable","kind":"Service","group":"core","namespace":"shop"}""")]
    public void HttpRouteRules_StableNamedWithItsDefaults_IsTheStableBackend(string stable)
    {
        var rules = Parse($$"""[{"backendRefs":[{{stable}},{"name":"checkout-canary","weight":10}]}]""");

        var shift = StableTraffic.HttpRouteRules(rules, "shop", "checkout-stable");

        Assert.Null(shift.Problem);
        Assert.Equal([100, 0], shift.Updated[0]!["backendRefs"]!.AsArray().Select(r => r!["weight"]!.GetValue<int>()));
    }

    [Theory]
    [InlineData("""{"name":"checkout-stable","namespace":"payments"}""", "Service payments/checkout-stable")]
    [InlineData("""{"name":"checkout-stable","kind":"ServiceImport","group":"multicluster.x-k8s.io"}""", "ServiceImport.multicluster.x-k8s.io shop/checkout-stable")]
    [InlineData("""{"name":"checkout-stable","group":"example.com"}""", "Service.example.com shop/checkout-stable")]
    public void HttpRouteRules_StableNameOfAnotherNamespaceKindOrGroup_IsAnotherBackend_Refused(string alike, string shown)
    {
        var rules = Parse($$"""[{"backendRefs":[{{alike}},{"name":"checkout-canary","weight":10}]}]""");

        var shift = StableTraffic.HttpRouteRules(rules, "shop", "checkout-stable");

        Assert.False(shift.Changed);
        Assert.Equal(
            $"no rule lists the stable backend 'checkout-stable' in backendRefs (the Service shop/checkout-stable; the route's {shown} is another backend)",
            shift.Problem);
    }

    [Fact]
    public void HttpRouteRules_ABackendOfTheStableNameInAnotherNamespace_IsNotMovedToStable()
    {
        // payments/checkout-stable is not in a split with shop's stable backend: its rule is another service's.
        var rules = Parse("""
            [{"backendRefs":[{"name":"checkout-stable","weight":90},{"name":"checkout-canary","weight":10}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/pay"}}],"backendRefs":[
               {"name":"checkout-stable","namespace":"payments","weight":50},{"name":"checkout-v3","namespace":"payments","weight":50}]}]
            """);

        AssertRewritten(StableTraffic.HttpRouteRules(rules, "shop", "checkout-stable"), rewritten: 1, untouched: 1, """
            [{"backendRefs":[{"name":"checkout-stable","weight":100},{"name":"checkout-canary","weight":0}]},
             {"matches":[{"path":{"type":"PathPrefix","value":"/pay"}}],"backendRefs":[
               {"name":"checkout-stable","namespace":"payments","weight":50},{"name":"checkout-v3","namespace":"payments","weight":50}]}]
            """);
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
