using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;
using RolloutGate.Rollbacks;
using RolloutGate.Tests.Prometheus;

namespace RolloutGate.Tests.Rollbacks;

public sealed class KubernetesRollbackTests : IAsyncLifetime
{
    private static readonly RollbackAction Istio = new(Istio: new IstioRollback("checkout", "stable"));

    private FakeKubernetesApiServer server = null!;
    private ServiceProvider services = null!;

    private IRollbackExecutor Executor => services.GetRequiredService<IRollbackExecutor>();

    public async Task InitializeAsync()
    {
        server = await FakeKubernetesApiServer.StartAsync();
        services = RollbackTestServices.Create(server.Url, server.TokenFile);
    }

    public async Task DisposeAsync()
    {
        await services.DisposeAsync();
        await server.DisposeAsync();
    }

    private static JsonObject Obj(string json) => JsonNode.Parse(json)!.AsObject();

    private void StoreCanaryVirtualService()
    {
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", Obj("""
            {"hosts":["checkout"],"http":[
              {"match":[{"headers":{"x-canary":{"exact":"1"}}}],"route":[{"destination":{"host":"checkout","subset":"canary"}}]},
              {"route":[{"destination":{"host":"checkout","subset":"stable","port":{"number":8080}},"weight":90},
                        {"destination":{"host":"checkout","subset":"canary","port":{"number":8080}},"weight":10}]}]}
            """));
        StoreDestinationRule("checkout", "checkout.shop.svc.cluster.local", "stable", "canary");
    }

    /// <summary>A fully promoted canary: the only route sends to the canary subset, none names the stable one.</summary>
    private void StorePromotedVirtualService() =>
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout",
            Obj("""{"hosts":["checkout"],"http":[{"route":[{"destination":{"host":"checkout","subset":"canary","port":{"number":8080}}}]}]}"""));

    private void StoreDestinationRule(string name, string host, params string[] subsets) =>
        server.Store(KubernetesResource.IstioDestinationRule, "shop", name, new JsonObject
        {
            ["host"] = host,
            ["subsets"] = new JsonArray([.. subsets.Select(subset => (JsonNode)new JsonObject { ["name"] = subset, ["labels"] = new JsonObject { ["version"] = subset } })]),
        });

    private const string ListDestinationRules = "GET /apis/networking.istio.io/v1/namespaces/shop/destinationrules";

    /// <summary>The Istio rollback, by services whose log lines are kept.</summary>
    private async Task<(RollbackOutcome Outcome, RolloutGate.Tests.Infrastructure.LogCapture Logs)> ExecuteLoggedAsync()
    {
        var logs = new RolloutGate.Tests.Infrastructure.LogCapture();
        await using var withLogs = RollbackTestServices.Create(server.Url, server.TokenFile, logs);
        return (await withLogs.GetRequiredService<IRollbackExecutor>().ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None), logs);
    }

    private static void AssertAllIstioRoutesStable(JsonObject virtualService)
    {
        foreach (var route in virtualService["spec"]!["http"]!.AsArray())
        {
            var destination = Assert.Single(route!["route"]!.AsArray())!;
            Assert.Equal("stable", destination["destination"]!["subset"]!.GetValue<string>());
            Assert.Equal(100, destination["weight"]!.GetValue<int>());
        }
    }

    [Fact]
    public async Task Istio_CanarySplit_AllHttpRoutesToStableSubset()
    {
        StoreCanaryVirtualService();

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal("istio VirtualService shop/checkout: HTTP routes of checkout to subset stable", outcome.Action);
        var stored = server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout");
        AssertAllIstioRoutesStable(stored);
        Assert.Equal("x-canary", stored["spec"]!["http"]![0]!["match"]![0]!["headers"]!.AsObject().Single().Key);
        Assert.Equal(8080, stored["spec"]!["http"]![1]!["route"]![0]!["destination"]!["port"]!["number"]!.GetValue<int>());
        Assert.Equal(["checkout"], stored["spec"]!["hosts"]!.AsArray().Select(h => h!.GetValue<string>()));
        Assert.EndsWith("; DestinationRule shop/checkout defines subset 'stable'", outcome.Detail, StringComparison.Ordinal);
        Assert.Equal(
            ["GET /apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout", ListDestinationRules,
             "PATCH /apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout"],
            server.Requests);
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    public async Task ApiServerBehindAProxyWithAPathPrefixAndAQuery_EveryCallGoesUnderThePrefixAndKeepsTheQuery(string slash)
    {
        StoreCanaryVirtualService();
        await using var proxied = RollbackTestServices.Create(server.Url + FakeKubernetesApiServer.ProxyPrefix + slash + "?tenant=team-a", server.TokenFile);

        var outcome = await proxied.GetRequiredService<IRollbackExecutor>().ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(
            [
                $"{FakeKubernetesApiServer.ProxyPrefix}/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout?tenant=team-a",
                $"{FakeKubernetesApiServer.ProxyPrefix}/apis/networking.istio.io/v1/namespaces/shop/destinationrules?tenant=team-a",
                $"{FakeKubernetesApiServer.ProxyPrefix}/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout?tenant=team-a",
            ],
            server.Targets);
        AssertAllIstioRoutesStable(server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout"));
    }

    /// <summary>
    /// A proxy in front of the API server refuses with an endless HTML page: the client reads its start only, and the
    /// outcome names the HTTP status at once. Before, the whole page was read: the attempt was held until its timeout,
    /// and the refusal was never seen (the next attempt, not refused, went through). The attempt timeout here is a
    /// minute, so that only the bound on the body can end the attempt in the time asserted, however loaded the machine:
    /// the outcome, the refusal after one attempt, is what shows it (a timeout would be retried, and the retry succeed).
    /// </summary>
    [Fact]
    public async Task ApiServerBehindAProxyAnsweringAnEndlessErrorPage_FailsAtOnceNamingTheStatus()
    {
        StoreCanaryVirtualService();
        server.AnswerNextWithAnEndlessErrorPage(403);
        var attemptTimeout = TimeSpan.FromMinutes(1);
        await using var patient = RollbackTestServices.Create(server.Url, server.TokenFile, attemptTimeout: attemptTimeout);
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var outcome = await patient.GetRequiredService<IRollbackExecutor>().ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Equal(
            "GET /apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout answered 403 Forbidden (403, after 1 attempt)",
            outcome.Detail);
        Assert.True(watch.Elapsed < attemptTimeout / 2, $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task Istio_StableSubsetNotInTheDestinationRule_FailsSayingWhyWithoutWriting()
    {
        // Patched, the route would send everything to a subset Envoy has no cluster for: 503 for every request.
        StorePromotedVirtualService();
        StoreDestinationRule("checkout", "checkout", "canary", "v2");

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal(
            "VirtualService shop/checkout was not changed: DestinationRule shop/checkout has subsets canary, v2; no 'stable': "
            + "Envoy would answer 503 to every request routed there; roll this service back by other means (after 1 attempt)",
            outcome.Detail);
        Assert.Empty(server.Patches);
        Assert.Equal(["GET /apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout", ListDestinationRules], server.Requests);
        Assert.Equal("1", server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout")["metadata"]!["resourceVersion"]!.GetValue<string>());
    }

    [Fact]
    public async Task Istio_StableSubsetInTheDestinationRule_PromotedCanaryIsPatched()
    {
        StorePromotedVirtualService();
        StoreDestinationRule("checkout", "CHECKOUT.shop", "canary", "stable");

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.EndsWith("; DestinationRule shop/checkout defines subset 'stable'", outcome.Detail, StringComparison.Ordinal);
        AssertAllIstioRoutesStable(server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout"));
    }

    [Fact]
    public async Task Istio_DestinationRulesForbidden_PatchesAsBeforeSayingTheSubsetWasNotChecked()
    {
        // A service account bound with the RBAC from before the check: the rollback goes on as it did then.
        StorePromotedVirtualService();
        server.FailNextList(403);

        await AssertPatchedWithSubsetNotCheckedAsync(
            "RolloutGate may not list DestinationRules in namespace shop (destinationrules.networking.istio.io is forbidden: "
            + "User \"system:serviceaccount:rolloutgate:rolloutgate\" cannot list resource \"destinationrules\" in API group \"networking.istio.io\" in the namespace \"shop\" "
            + "(403 Forbidden)); grant list on destinationrules.networking.istio.io as deploy/kubernetes/rolloutgate.yaml does");
    }

    [Fact]
    public async Task Istio_NoDestinationRuleForTheService_PatchesAsBeforeSayingTheSubsetWasNotChecked()
    {
        // Rules for other hosts (another name, the same name in another namespace) say nothing about this service's subsets.
        StorePromotedVirtualService();
        StoreDestinationRule("checkout-canary", "checkout-canary", "canary");
        StoreDestinationRule("payments-checkout", "checkout.payments.svc.cluster.local", "canary");

        await AssertPatchedWithSubsetNotCheckedAsync(
            "no DestinationRule in namespace shop is for service checkout in namespace shop "
            + "(Istio may take one from a client's namespace or its root namespace, which RolloutGate does not read)");
    }

    [Fact]
    public async Task Istio_DestinationRulesNotServed_PatchesAsBeforeSayingTheSubsetWasNotChecked()
    {
        // Any answer but a transient one is final, and the check is not worth a rollback.
        StorePromotedVirtualService();
        server.ServeOnly(KubernetesResource.IstioDestinationRule);

        await AssertPatchedWithSubsetNotCheckedAsync(
            "the DestinationRules of namespace shop could not be listed: the Kubernetes API serves destinationrules.networking.istio.io at none of the versions "
            + "RolloutGate uses (networking.istio.io/v1, networking.istio.io/v1beta1): its CustomResourceDefinition is not installed, or serves none of these versions (404)");
    }

    /// <summary>The promoted canary is moved to stable as it was before the check, and the detail ends saying why the subset was not checked.</summary>
    private async Task AssertPatchedWithSubsetNotCheckedAsync(string why)
    {
        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(1, outcome.Attempts);
        Assert.EndsWith("; subset 'stable' not checked: " + why, outcome.Detail, StringComparison.Ordinal);
        AssertAllIstioRoutesStable(server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout"));
    }

    [Fact]
    public async Task Istio_DestinationRuleForAnotherHostWithoutTheSubset_IsIgnored()
    {
        StorePromotedVirtualService();
        StoreDestinationRule("a-checkout-canary", "checkout-canary.shop.svc.cluster.local", "canary");
        StoreDestinationRule("checkout", "checkout.shop.svc", "canary", "stable");

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.EndsWith("; DestinationRule shop/checkout defines subset 'stable'", outcome.Detail, StringComparison.Ordinal);
        Assert.Single(server.Patches);
    }

    [Fact]
    public async Task Istio_DestinationRulesUnavailableOnce_TriesTheWholeAttemptAgain()
    {
        StorePromotedVirtualService();
        StoreDestinationRule("checkout", "checkout", "canary");
        server.FailNextList(503);

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        // The second attempt reads the rules it could not read the first time, and refuses.
        Assert.False(outcome.Succeeded);
        Assert.Equal(2, outcome.Attempts);
        Assert.Contains("DestinationRule shop/checkout has subsets canary; no 'stable'", outcome.Detail, StringComparison.Ordinal);
        Assert.Empty(server.Patches);
    }

    [Fact]
    public async Task Istio_VirtualServiceNotNamedAfterTheWorkload_TheOneTheRunbookNamesIsPatched()
    {
        // In the other tests the VirtualService, the workload and the service are all "checkout", which hides whose name is
        // used. Here the runbook names "checkout-routes"; one called after the workload exists too and must be left alone.
        var canary = """{"http":[{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":90},{"destination":{"host":"checkout","subset":"canary"},"weight":10}]}]}""";
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout-routes", Obj(canary));
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", Obj(canary));

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(Istio: new IstioRollback("checkout-routes", "stable"))), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal("istio VirtualService shop/checkout-routes: HTTP routes of checkout to subset stable", outcome.Action);
        AssertAllIstioRoutesStable(server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout-routes"));
        Assert.True(JsonNode.DeepEquals(Obj(canary), server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout")["spec"]));
        Assert.All(server.Requests.Where(r => r != ListDestinationRules), r => Assert.EndsWith("/namespaces/shop/virtualservices/checkout-routes", r, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Istio_AlreadyAllStable_SucceedsWithoutWriting()
    {
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout",
            Obj("""{"http":[{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]}]}"""));

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Contains("nothing written", outcome.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(server.Requests, r => r.StartsWith("PATCH", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Istio_ConcurrentEditBeforePatch_ConflictRereadsAndRewritesTheNewRoutesToo()
    {
        StoreCanaryVirtualService();
        server.EditConcurrentlyBeforeNextPatch(vs => vs["spec"]!["http"]!.AsArray().Add(
            Obj("""{"match":[{"uri":{"prefix":"/beta"}}],"route":[{"destination":{"host":"checkout","subset":"canary"}}]}""")));

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(2, outcome.Attempts);
        var stored = server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout");
        Assert.Equal(3, stored["spec"]!["http"]!.AsArray().Count);
        AssertAllIstioRoutesStable(stored);
        Assert.Equal(["GET", "GET", "PATCH", "GET", "GET", "PATCH"], server.Requests.Select(r => r.Split(' ')[0]));
    }

    [Fact]
    public async Task Istio_RouteToAnotherHost_PatchLeavesItExactlyAsItWas()
    {
        var staticRoute = """{"match":[{"uri":{"prefix":"/static"}}],"route":[{"destination":{"host":"cdn.shop.svc.cluster.local"}}]}""";
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", Obj($$$"""
            {"hosts":["checkout"],"http":[{{{staticRoute}}},
              {"route":[{"destination":{"host":"checkout.shop.svc.cluster.local","subset":"stable"},"weight":80},
                        {"destination":{"host":"checkout.shop.svc.cluster.local","subset":"canary"},"weight":20}]}]}
            """));

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Contains("1 http entries to stable, 1 not routing to this service left as they were", outcome.Detail, StringComparison.Ordinal);
        var patch = Assert.Single(server.Patches);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$$"""
            {"metadata":{"resourceVersion":"1"},"spec":{"http":[{{{staticRoute}}},
              {"route":[{"destination":{"host":"checkout.shop.svc.cluster.local","subset":"stable"},"weight":100}]}]}}
            """), patch), patch.ToJsonString());
    }

    /// <summary>
    /// Blue/green with mirroring (Flagger's, say): all traffic is answered by stable, and every request is mirrored to the
    /// canary, which still serves it (its writes and calls). The rollback removes the mirror; before, the routes counted
    /// as already stable and nothing was written.
    /// </summary>
    [Fact]
    public async Task Istio_MirrorToTheCanary_ThePatchRemovesIt()
    {
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", Obj("""
            {"hosts":["checkout"],"http":[{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}],
              "mirror":{"host":"checkout","subset":"canary"},"mirrorPercentage":{"value":100.0}}]}
            """));
        StoreDestinationRule("checkout", "checkout", "stable", "canary");

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        var patch = Assert.Single(server.Patches);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""
            {"metadata":{"resourceVersion":"1"},"spec":{"http":[{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":100}]}]}}
            """), patch), patch.ToJsonString());
        var route = server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout")["spec"]!["http"]![0]!.AsObject();
        Assert.False(route.ContainsKey("mirror"));
        Assert.False(route.ContainsKey("mirrorPercentage"));
    }

    [Fact]
    public async Task Istio_SplitByHostWithoutSubsets_FailsNamingTheRouteWithoutWriting()
    {
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", Obj("""
            {"hosts":["checkout"],"http":[{"name":"split","route":[
              {"destination":{"host":"checkout-canary"},"weight":20},{"destination":{"host":"checkout"},"weight":80}]}]}
            """));

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Equal(1, outcome.Attempts);
        Assert.Contains(
            "VirtualService shop/checkout was not changed: http route 'split' (http[0]) sends traffic to checkout without a subset, so it cannot be moved to subset 'stable'",
            outcome.Detail, StringComparison.Ordinal);
        Assert.Empty(server.Patches);
    }

    [Fact]
    public async Task Istio_SplitBetweenOtherHosts_FailsWithoutWriting()
    {
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", Obj("""
            {"http":[{"route":[{"destination":{"host":"checkout-canary"},"weight":20},{"destination":{"host":"checkout-stable"},"weight":80}]}]}
            """));

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Contains("VirtualService shop/checkout was not changed: no http route sends traffic to service checkout in namespace shop", outcome.Detail, StringComparison.Ordinal);
        Assert.Empty(server.Patches);
    }

    [Fact]
    public async Task Istio_TcpOnlyVirtualService_FailsWithoutWriting()
    {
        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", Obj("""
            {"tcp":[{"route":[{"destination":{"host":"checkout","subset":"stable"},"weight":50},{"destination":{"host":"checkout","subset":"canary"},"weight":50}]}]}
            """));

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Contains("VirtualService shop/checkout was not changed: tcp route tcp[0] sends traffic to service checkout in namespace shop", outcome.Detail, StringComparison.Ordinal);
        Assert.Empty(server.Patches);
    }

    [Fact]
    public async Task Istio_UnknownVirtualService_FailsWithKubernetesMessageWithoutRetrying()
    {
        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Equal(1, outcome.Attempts);
        Assert.Contains("virtualservices.networking.istio.io \"checkout\" not found", outcome.Detail, StringComparison.Ordinal);
        // A missing object is a 404 with a Status: not asked again at an older version of the type.
        Assert.Equal(["GET /apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout"], server.Requests);
    }

    /// <summary>
    /// Istio before 1.22 serves networking.istio.io at v1beta1 (and v1alpha3), not v1: the API server answers a plain 404
    /// to the v1 paths, and the action reads, lists and patches at v1beta1 instead.
    /// </summary>
    [Fact]
    public async Task Istio_IstioServingV1beta1Only_ReadsChecksAndPatchesAtV1beta1()
    {
        server.ServeOnly(KubernetesResource.IstioVirtualService, "v1beta1", "v1alpha3");
        server.ServeOnly(KubernetesResource.IstioDestinationRule, "v1beta1", "v1alpha3");
        StoreCanaryVirtualService();

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(1, outcome.Attempts);
        Assert.EndsWith("; DestinationRule shop/checkout defines subset 'stable'", outcome.Detail, StringComparison.Ordinal);
        AssertAllIstioRoutesStable(server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout"));
        const string VirtualService = "/namespaces/shop/virtualservices/checkout";
        Assert.Equal(
            ["GET /apis/networking.istio.io/v1" + VirtualService, "GET /apis/networking.istio.io/v1beta1" + VirtualService,
             ListDestinationRules, "GET /apis/networking.istio.io/v1beta1/namespaces/shop/destinationrules",
             "PATCH /apis/networking.istio.io/v1" + VirtualService, "PATCH /apis/networking.istio.io/v1beta1" + VirtualService],
            server.Requests);
        // The resourceVersion read at v1beta1 guards the patch there as at v1.
        Assert.Equal("1", Assert.Single(server.Patches)["metadata"]!["resourceVersion"]!.GetValue<string>());
    }

    [Fact]
    public async Task Istio_ServiceUnavailableTwice_SucceedsOnTheThirdAttempt()
    {
        StoreCanaryVirtualService();
        server.FailNext(503, 503);

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(3, outcome.Attempts);
        AssertAllIstioRoutesStable(server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout"));
    }

    [Fact]
    public async Task Istio_ApiServerDown_FailsAfterBoundedRetries()
    {
        var down = PrometheusTestServer.UnusedLoopbackUrl();
        await using var unreachable = RollbackTestServices.Create(down, server.TokenFile);

        var outcome = await unreachable.GetRequiredService<IRollbackExecutor>()
            .ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Equal(RollbackTestServices.MaxRetryAttempts + 1, outcome.Attempts);
        Assert.Contains($"the Kubernetes API at {down}/ is unreachable after {outcome.Attempts} attempts", outcome.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Istio_DeniedByAnAdmissionWebhookOverSeveralLines_KeepsItsWordsButLogsOneLine()
    {
        // The API server passes on what the webhook says, line breaks and all: the audit trail and the channel show it
        // as it was, and each log line of the rollback stays one line, as the decision inbox's do (LogText).
        StoreCanaryVirtualService();
        server.FailNextPatch(400);

        var (outcome, logs) = await ExecuteLoggedAsync();

        Assert.False(outcome.Succeeded);
        Assert.Equal(1, outcome.Attempts);
        Assert.Contains("denied the request:\n[require-owner] the object must have label owner\n[change-window]", outcome.Detail, StringComparison.Ordinal);
        var failed = Assert.Single(logs.Lines, line => line.Contains("failed after 1 attempt(s)", StringComparison.Ordinal));
        Assert.Contains("denied the request:\\n[require-owner] the object must have label owner\\n[change-window]", failed, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', failed);
    }

    [Theory]
    // RBAC that lets the service account read but not patch.
    [InlineData(403, "virtualservices.networking.istio.io \"checkout\" is forbidden: User \"system:serviceaccount:rolloutgate:rolloutgate\" "
        + "cannot patch resource \"virtualservices\" in API group \"networking.istio.io\" in the namespace \"shop\" (403 Forbidden, after 1 attempt)")]
    // A schema or admission check refusing the new routes.
    [InlineData(422, "VirtualService.networking.istio.io \"checkout\" is invalid: spec.http[0].route[0].destination.subset: Invalid value: \"stable\": "
        + "no DestinationRule of host checkout defines this subset (422 Invalid, after 1 attempt)")]
    // Deleted between the read and the patch.
    [InlineData(404, "virtualservices.networking.istio.io \"checkout\" not found (404 NotFound, after 1 attempt)")]
    public async Task Istio_PatchRefusedForGood_FailsAtOnceInTheApiServersWords(int status, string detail)
    {
        StoreCanaryVirtualService();
        server.FailNextPatch(status);

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        // Trying again would change nothing: one attempt, and nothing written.
        Assert.False(outcome.Succeeded);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal(detail, outcome.Detail);
        Assert.Equal("1", server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout")["metadata"]!["resourceVersion"]!.GetValue<string>());
    }

    [Fact]
    public async Task Istio_ConflictOnEveryPatch_ReadsAgainEachTimeAndFailsAfterBoundedAttempts()
    {
        StoreCanaryVirtualService();
        server.FailNextPatch([.. Enumerable.Repeat(409, 10)]);

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Equal(RollbackTestServices.MaxRetryAttempts + 1, outcome.Attempts);
        Assert.StartsWith("Operation cannot be fulfilled on virtualservices.networking.istio.io \"checkout\"", outcome.Detail, StringComparison.Ordinal);
        Assert.EndsWith($"(409 Conflict, after {outcome.Attempts} attempts)", outcome.Detail, StringComparison.Ordinal);
        Assert.Equal([.. Enumerable.Repeat(new[] { "GET", "GET", "PATCH" }, outcome.Attempts).SelectMany(attempt => attempt)], server.Requests.Select(r => r.Split(' ')[0]));
    }

    [Fact]
    public async Task Istio_TooManyRequests_WaitsTheRetryAfterWithinMaxDelayAndSucceeds()
    {
        // API priority and fairness answers 429 with Retry-After: 1; the test's MaxDelay (200 ms) caps it, where the
        // backoff alone would wait about 20 ms.
        StoreCanaryVirtualService();
        server.FailNext(429);

        var (outcome, logs) = await ExecuteLoggedAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(2, outcome.Attempts);
        Assert.Contains(logs.Lines, line => line.Contains(": attempt 2 in 200ms, the last one failed: Too many requests", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Istio_TwoHundredRoutes_AllMovedToStableInOnePatch()
    {
        var routes = new JsonArray();
        for (var i = 0; i < 200; i++)
        {
            routes.Add(Obj($$$"""
                {"name":"r{{{i}}}","match":[{"uri":{"prefix":"/p{{{i}}}"}}],"route":[
                  {"destination":{"host":"checkout","subset":"stable","port":{"number":8080}},"weight":90},
                  {"destination":{"host":"checkout","subset":"canary","port":{"number":8080}},"weight":10}]}
                """));
        }

        server.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", new JsonObject { ["hosts"] = new JsonArray("checkout"), ["http"] = routes });

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(1, outcome.Attempts);
        Assert.Single(server.Patches);
        var stored = server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout");
        Assert.Equal(200, stored["spec"]!["http"]!.AsArray().Count);
        AssertAllIstioRoutesStable(stored);
        Assert.Equal("/p199", stored["spec"]!["http"]![199]!["match"]![0]!["uri"]!["prefix"]!.GetValue<string>());
        Assert.Contains("200 http entries to stable", outcome.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Istio_TokenRotatedOnDisk_NewTokenIsSent()
    {
        // One rollback with the first token, then the kubelet rotates it (the API server takes only the new one now): the
        // next rollback of the same services sends the new token, as a projected token is replaced on disk every hour or so.
        StoreCanaryVirtualService();
        var executor = Executor;
        Assert.True((await executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None)).Succeeded);
        await File.WriteAllTextAsync(server.TokenFile, "token-2-rotated");
        StoreCanaryVirtualService();

        var outcome = await executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        AssertAllIstioRoutesStable(server.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout"));
    }

    /// <summary>
    /// A token file the service may not read (another owner, a mode without read): the action fails, tried a few times and
    /// recorded, naming the file. Before, the file's exception came out of the executor, so the dispatcher logged it and
    /// claimed the rollback again every lease, never recording an outcome or telling anyone.
    /// </summary>
    [Fact]
    public async Task Istio_TokenFileUnreadable_FailsNamingTheFile()
    {
        StoreCanaryVirtualService();
        Infrastructure.TestRunbooks.MakeUnreadable(server.TokenFile, Infrastructure.TestRunbooks.NotPermitted);

        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Equal(RollbackTestServices.MaxRetryAttempts + 1, outcome.Attempts);
        Assert.Contains($"is unreachable after {outcome.Attempts} attempts: the bearer token file {server.TokenFile} cannot be read: ", outcome.Detail, StringComparison.Ordinal);
        Assert.Empty(server.Requests);
    }

    /// <summary>
    /// A CA file that is there but cannot be read: each call fails naming it, and the rollback is recorded as failed.
    /// Before, its exception came out of every creation of the Kubernetes client, so no rollback executor could be made,
    /// not even for a webhook action, and the dispatcher claimed the rollback again every lease without an outcome.
    /// </summary>
    [Fact]
    public async Task Istio_CaFileUnreadable_FailsNamingTheFile()
    {
        StoreCanaryVirtualService();
        var caFile = Path.Combine(Path.GetTempPath(), $"rolloutgate-tests-ca-{Guid.NewGuid():N}.crt");
        Infrastructure.TestRunbooks.MakeUnreadable(caFile, Infrastructure.TestRunbooks.NotPermitted);
        try
        {
            await using var services = RollbackTestServices.Create(server.Url, server.TokenFile, caFile: caFile);

            var outcome = await services.GetRequiredService<IRollbackExecutor>().ExecuteAsync(RollbackTestServices.Request(Istio), CancellationToken.None);

            Assert.False(outcome.Succeeded);
            Assert.Contains($"is unreachable after {outcome.Attempts} attempts: the CA file {caFile} cannot be read as PEM certificates: ", outcome.Detail, StringComparison.Ordinal);
            Assert.Empty(server.Requests);
        }
        finally
        {
            File.Delete(caFile);
        }
    }

    [Fact]
    public async Task Istio_NoMeshNamespace_FailsWithoutCallingTheApi()
    {
        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(Istio, @namespace: null), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Equal(0, outcome.Attempts);
        Assert.Contains("mesh.namespace", outcome.Detail, StringComparison.Ordinal);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task Linkerd_HttpRouteSplit_StableBackendFullWeightOthersZero()
    {
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj("""
            {"parentRefs":[{"name":"checkout","kind":"Service","group":"core","port":8080}],"rules":[
              {"matches":[{"path":{"type":"PathPrefix","value":"/"}}],"backendRefs":[
                {"name":"checkout-stable","port":8080,"weight":70},{"name":"checkout-canary","port":8080,"weight":30}]}]}
            """));

        var outcome = await RollBackLinkerdAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal([("checkout-stable", 100), ("checkout-canary", 0)], BackendWeights(KubernetesResource.GatewayHttpRoute));
        Assert.Equal("linkerd HTTPRoute shop/checkout: all traffic to backend checkout-stable", outcome.Action);
    }

    /// <summary>An HTTPRoute's one rule splitting 70/30 between checkout-stable and checkout-canary.</summary>
    private const string LinkerdSplit =
        """{"rules":[{"backendRefs":[{"name":"checkout-stable","port":8080,"weight":70},{"name":"checkout-canary","port":8080,"weight":30}]}]}""";

    /// <summary>
    /// The backends of the first rule of the route <paramref name="name"/> in shop, stored as <paramref name="resource"/>,
    /// with their weights: what a linkerd rollback of <see cref="LinkerdSplit"/> leaves there.
    /// </summary>
    private List<(string Backend, int Weight)> BackendWeights(KubernetesResource resource, string name = "checkout") =>
        server.Stored(resource, "shop", name)["spec"]!["rules"]![0]!["backendRefs"]!.AsArray()
            .Select(r => (r!["name"]!.GetValue<string>(), r["weight"]!.GetValue<int>())).ToList();

    /// <summary>The linkerd rollback of the route checkout to the backend checkout-stable.</summary>
    private Task<RollbackOutcome> RollBackLinkerdAsync() =>
        Executor.ExecuteAsync(RollbackTestServices.Request(new RollbackAction(Linkerd: new LinkerdRollback("checkout", "checkout-stable"))), CancellationToken.None);

    [Fact]
    public async Task Linkerd_HttpRouteNotNamedAfterTheWorkload_TheOneTheRunbookNamesIsPatched()
    {
        var split = LinkerdSplit;
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout-split", Obj(split));
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj(split));

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(Linkerd: new LinkerdRollback("checkout-split", "checkout-stable"))), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal([("checkout-stable", 100), ("checkout-canary", 0)], BackendWeights(KubernetesResource.GatewayHttpRoute, "checkout-split"));
        Assert.True(JsonNode.DeepEquals(Obj(split), server.Stored(KubernetesResource.GatewayHttpRoute, "shop", "checkout")["spec"]));
    }

    /// <summary>
    /// A rule sending testers to the canary only (by header) is this service's traffic: the patch adds the stable backend
    /// to it at weight 100. Before, it was left as it was and the detail said it was not routing to this service.
    /// </summary>
    [Fact]
    public async Task Linkerd_HeaderRuleToTheCanaryOnly_ThePatchSendsItToStable()
    {
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj("""
            {"parentRefs":[{"name":"checkout","kind":"Service","group":"core","port":8080}],"rules":[
              {"matches":[{"headers":[{"name":"x-canary","value":"1"}]}],"backendRefs":[{"name":"checkout-canary","port":8080}]},
              {"backendRefs":[{"name":"checkout-stable","port":8080,"weight":90},{"name":"checkout-canary","port":8080,"weight":10}]}]}
            """));

        var outcome = await RollBackLinkerdAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Contains("2 rules entries to stable)", outcome.Detail, StringComparison.Ordinal);
        var patch = Assert.Single(server.Patches);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""
            {"metadata":{"resourceVersion":"1"},"spec":{"rules":[
              {"matches":[{"headers":[{"name":"x-canary","value":"1"}]}],"backendRefs":[
                {"name":"checkout-canary","port":8080,"weight":0},{"name":"checkout-stable","port":8080,"weight":100}]},
              {"backendRefs":[{"name":"checkout-stable","port":8080,"weight":100},{"name":"checkout-canary","port":8080,"weight":0}]}]}}
            """), patch), patch.ToJsonString());
    }

    /// <summary>
    /// A RequestMirror filter to the canary, of the rule or of the stable backendRef, goes with the rollback: the canary
    /// would serve every mirrored request, writes included. A mirror elsewhere stays. Before, both were left in the route.
    /// </summary>
    [Fact]
    public async Task Linkerd_MirrorsToTheCanary_AreRemovedByThePatch()
    {
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj("""
            {"rules":[{
              "filters":[{"type":"RequestMirror","requestMirror":{"backendRef":{"name":"checkout-canary","port":8080},"percent":100}},
                         {"type":"RequestMirror","requestMirror":{"backendRef":{"name":"analytics","port":80}}}],
              "backendRefs":[
                {"name":"checkout-stable","port":8080,"weight":100,"filters":[
                  {"type":"RequestMirror","requestMirror":{"backendRef":{"name":"checkout-canary","namespace":"shop","port":8080}}}]},
                {"name":"checkout-canary","port":8080,"weight":0}]}]}
            """));

        var outcome = await RollBackLinkerdAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        var patch = Assert.Single(server.Patches);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""
            {"metadata":{"resourceVersion":"1"},"spec":{"rules":[{
              "filters":[{"type":"RequestMirror","requestMirror":{"backendRef":{"name":"analytics","port":80}}}],
              "backendRefs":[{"name":"checkout-stable","port":8080,"weight":100},{"name":"checkout-canary","port":8080,"weight":0}]}]}}
            """), patch), patch.ToJsonString());
    }

    /// <summary>
    /// The runbook's stableBackend is a Service in mesh.namespace: a backendRef of that name in another namespace is another
    /// Service. Before, it was taken for the stable backend and given all the traffic.
    /// </summary>
    [Fact]
    public async Task Linkerd_StableNameInAnotherNamespace_FailsWithoutWriting()
    {
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj("""
            {"rules":[{"backendRefs":[{"name":"checkout-stable","namespace":"payments","port":8080,"weight":90},{"name":"checkout-canary","port":8080,"weight":10}]}]}
            """));

        AssertRefusedWithoutWriting(await RollBackLinkerdAsync(),
            "no rule lists the stable backend 'checkout-stable' in backendRefs (the Service shop/checkout-stable; the route's Service payments/checkout-stable is another backend)");
    }

    /// <summary>The rollback failed saying <paramref name="said"/>, and nothing was written.</summary>
    private void AssertRefusedWithoutWriting(RollbackOutcome outcome, string said)
    {
        Assert.False(outcome.Succeeded);
        Assert.Contains(said, outcome.Detail, StringComparison.Ordinal);
        Assert.Empty(server.Patches);
    }

    /// <summary>
    /// Linkerd 2.15 to 2.17 work with Gateway API 0.7 to 1.1.1; 0.7 serves HTTPRoute at v1beta1 (and v1alpha2) only.
    /// </summary>
    [Fact]
    public async Task Linkerd_GatewayApiServingHttpRouteAtV1beta1Only_PatchesItThere()
    {
        server.ServeOnly(KubernetesResource.GatewayHttpRoute, "v1beta1", "v1alpha2");
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj("""
            {"rules":[{"backendRefs":[{"name":"checkout-stable","port":8080,"weight":70},{"name":"checkout-canary","port":8080,"weight":30}]}]}
            """));

        var outcome = await RollBackLinkerdAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal([("checkout-stable", 100), ("checkout-canary", 0)], BackendWeights(KubernetesResource.GatewayHttpRoute));
        Assert.Equal(
            ["GET /apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout", "GET /apis/gateway.networking.k8s.io/v1beta1/namespaces/shop/httproutes/checkout",
             "GET /apis/policy.linkerd.io/v1beta3/namespaces/shop/httproutes/checkout",
             "PATCH /apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout", "PATCH /apis/gateway.networking.k8s.io/v1beta1/namespaces/shop/httproutes/checkout"],
            server.Requests);
    }

    /// <summary>
    /// Neither HTTPRoute type has the route: the Gateway API's is not installed and Linkerd's has no object of that name.
    /// The refusal names both places and what each answered. Before, only the Gateway API's was looked at.
    /// </summary>
    [Fact]
    public async Task Linkerd_HttpRouteInNeitherGroup_FailsAtOnceNamingBothPlacesLooked()
    {
        server.ServeOnly(KubernetesResource.GatewayHttpRoute);

        var outcome = await RollBackLinkerdAsync();

        Assert.False(outcome.Succeeded);
        Assert.Equal(
            "HTTPRoute shop/checkout is in none of the places RolloutGate looks (httproutes.gateway.networking.k8s.io, httproutes.policy.linkerd.io): "
            + "the Kubernetes API serves httproutes.gateway.networking.k8s.io at none of the versions RolloutGate uses "
            + "(gateway.networking.k8s.io/v1, gateway.networking.k8s.io/v1beta1): its CustomResourceDefinition is not installed, or serves none of these versions; "
            + "httproutes.policy.linkerd.io \"checkout\" not found (after 1 attempt)",
            outcome.Detail);
        Assert.Equal(
            ["GET /apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout", "GET /apis/gateway.networking.k8s.io/v1beta1/namespaces/shop/httproutes/checkout",
             "GET /apis/policy.linkerd.io/v1beta3/namespaces/shop/httproutes/checkout"],
            server.Requests);
        Assert.Empty(server.Patches);
    }

    /// <summary>
    /// Linkerd 2.13 and 2.14 (and many clusters since) split traffic with Linkerd's own HTTPRoute, policy.linkerd.io: when
    /// the Gateway API has no route of that name (a 404 with a Status), that one is rolled back. Before, the rollback
    /// failed with 'httproutes.gateway.networking.k8s.io "checkout" not found'.
    /// </summary>
    [Fact]
    public async Task Linkerd_RouteOnlyInPolicyLinkerdIo_GatewayApiOneMissing_PatchesLinkerdsRoute()
    {
        server.Store(KubernetesResource.LinkerdHttpRoute, "shop", "checkout", Obj("""
            {"parentRefs":[{"name":"checkout","kind":"Service","group":"core","port":8080}],"rules":[
              {"backendRefs":[{"name":"checkout-stable","port":8080,"weight":70},{"name":"checkout-canary","port":8080,"weight":30}],
               "timeouts":{"request":"10s"}}]}
            """));

        var outcome = await RollBackLinkerdAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.StartsWith("httproutes.policy.linkerd.io: patched spec.rules (resourceVersion 1 -> 2; 1 rules entries to stable)", outcome.Detail, StringComparison.Ordinal);
        var rule = server.Stored(KubernetesResource.LinkerdHttpRoute, "shop", "checkout")["spec"]!["rules"]![0]!;
        Assert.Equal([("checkout-stable", 100), ("checkout-canary", 0)], rule["backendRefs"]!.AsArray().Select(r => (r!["name"]!.GetValue<string>(), r["weight"]!.GetValue<int>())));
        Assert.Equal("10s", rule["timeouts"]!["request"]!.GetValue<string>());
        Assert.Equal(
            ["GET /apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout", "GET /apis/policy.linkerd.io/v1beta3/namespaces/shop/httproutes/checkout",
             "PATCH /apis/policy.linkerd.io/v1beta3/namespaces/shop/httproutes/checkout"],
            server.Requests);
    }

    /// <summary>
    /// Linkerd 2.13 without the Gateway API's CRDs: HTTPRoute is served by Linkerd only, at policy.linkerd.io/v1beta2 (and
    /// the older versions, without backendRefs). Before, the rollback failed: the Gateway API's type is served nowhere.
    /// </summary>
    [Fact]
    public async Task Linkerd_GatewayApiNotInstalled_Linkerd213ServingV1beta2_PatchesItThere()
    {
        server.ServeOnly(KubernetesResource.GatewayHttpRoute);
        server.ServeOnly(KubernetesResource.LinkerdHttpRoute, "v1beta2", "v1beta1", "v1alpha1");
        server.Store(KubernetesResource.LinkerdHttpRoute, "shop", "checkout", Obj("""
            {"rules":[{"backendRefs":[{"name":"checkout-stable","port":8080,"weight":0},{"name":"checkout-canary","port":8080,"weight":100}]}]}
            """));

        var outcome = await RollBackLinkerdAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal([("checkout-stable", 100), ("checkout-canary", 0)], BackendWeights(KubernetesResource.LinkerdHttpRoute));
        Assert.Contains("PATCH /apis/policy.linkerd.io/v1beta2/namespaces/shop/httproutes/checkout", server.Requests);
    }

    /// <summary>
    /// Both groups have a route of that name: Linkerd's proxies route with both (its policy controller sends every
    /// HTTPRoute of either group attached to the Service, oldest first), so both are rolled back. Before, only the
    /// Gateway API's was, and Linkerd's was not even read: its 30% to the canary stayed.
    /// </summary>
    [Fact]
    public async Task Linkerd_RouteInBothGroups_BothArePatched()
    {
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj(LinkerdSplit));
        server.Store(KubernetesResource.LinkerdHttpRoute, "shop", "checkout", Obj(LinkerdSplit));

        var outcome = await RollBackLinkerdAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(
            "httproutes.gateway.networking.k8s.io: patched spec.rules (resourceVersion 1 -> 2; 1 rules entries to stable); "
            + "httproutes.policy.linkerd.io: patched spec.rules (resourceVersion 1 -> 2; 1 rules entries to stable)",
            outcome.Detail);
        foreach (var resource in new[] { KubernetesResource.GatewayHttpRoute, KubernetesResource.LinkerdHttpRoute })
        {
            Assert.Equal([("checkout-stable", 100), ("checkout-canary", 0)], BackendWeights(resource));
        }
    }

    /// <summary>
    /// A ClusterRole from before Linkerd's own routes were looked at may not read policy.linkerd.io: the Gateway API route
    /// found first is still rolled back, as it was then, and the detail says what was not read and what to grant.
    /// </summary>
    [Fact]
    public async Task Linkerd_GatewayApiRouteFound_LinkerdsGroupForbidden_RollsBackTheGatewayApiOneAndSaysWhatWasNotRead()
    {
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj(LinkerdSplit));
        server.Forbid(KubernetesResource.LinkerdHttpRoute);

        var outcome = await RollBackLinkerdAsync();

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.StartsWith(
            "httproutes.gateway.networking.k8s.io: patched spec.rules (resourceVersion 1 -> 2; 1 rules entries to stable); "
            + "httproutes.policy.linkerd.io: not read, so a HTTPRoute shop/checkout there, if any, was not rolled back (",
            outcome.Detail, StringComparison.Ordinal);
        Assert.EndsWith("; grant get and patch on httproutes.policy.linkerd.io to roll it back too)", outcome.Detail, StringComparison.Ordinal);
        Assert.Equal([("checkout-stable", 100), ("checkout-canary", 0)], BackendWeights(KubernetesResource.GatewayHttpRoute));
    }

    /// <summary>Both groups have the route, and one of them cannot be rolled back: neither is written, and the refusal names which.</summary>
    [Fact]
    public async Task Linkerd_RouteInBothGroups_OneWithoutTheStableBackend_FailsWithoutWritingEither()
    {
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout", Obj(LinkerdSplit));
        server.Store(KubernetesResource.LinkerdHttpRoute, "shop", "checkout", Obj("""
            {"rules":[{"backendRefs":[{"name":"checkout-canary","port":8080,"weight":100}]}]}
            """));

        AssertRefusedWithoutWriting(await RollBackLinkerdAsync(),
            "HTTPRoute shop/checkout was not changed: httproutes.policy.linkerd.io: no rule lists the stable backend 'checkout-stable'");
    }

    /// <summary>
    /// A Gateway API route that cannot be read (403) may well be there: the rollback fails with the API server's answer
    /// instead of rolling back a route of the same name in Linkerd's group.
    /// </summary>
    [Fact]
    public async Task Linkerd_GatewayApiRouteForbidden_FailsWithoutLookingElsewhere()
    {
        server.Store(KubernetesResource.LinkerdHttpRoute, "shop", "checkout", Obj(LinkerdSplit));
        server.FailNext(403);

        var outcome = await RollBackLinkerdAsync();

        Assert.False(outcome.Succeeded);
        Assert.Contains("cannot get resource \"httproutes\" in API group \"gateway.networking.k8s.io\"", outcome.Detail, StringComparison.Ordinal);
        Assert.Equal(["GET /apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout"], server.Requests);
        Assert.Empty(server.Patches);
    }

    [Fact]
    public async Task Linkerd_StableBackendNotInRoute_FailsWithoutWriting()
    {
        server.Store(KubernetesResource.GatewayHttpRoute, "shop", "checkout",
            Obj("""{"rules":[{"backendRefs":[{"name":"checkout-canary","port":8080}]}]}"""));

        var outcome = await RollBackLinkerdAsync();

        Assert.False(outcome.Succeeded);
        Assert.Equal(1, outcome.Attempts);
        Assert.Contains("checkout-stable", outcome.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(server.Requests, r => r.StartsWith("PATCH", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Smi_TrafficSplit_StableBackendFullWeightOthersZero()
    {
        server.Store(KubernetesResource.SmiTrafficSplit, "shop", "checkout", Obj("""
            {"service":"checkout","backends":[{"service":"checkout-v1","weight":50},{"service":"checkout-v2","weight":50}]}
            """));

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(Smi: new SmiRollback("checkout", "checkout-v1"))), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        var spec = server.Stored(KubernetesResource.SmiTrafficSplit, "shop", "checkout")["spec"]!;
        Assert.Equal("checkout", spec["service"]!.GetValue<string>());
        Assert.Equal([("checkout-v1", 100), ("checkout-v2", 0)],
            spec["backends"]!.AsArray().Select(b => (b!["service"]!.GetValue<string>(), b["weight"]!.GetValue<int>())));
    }

    /// <summary>The SMI SDK's own CRD serves TrafficSplit at v1alpha4 only (v1alpha2 and v1alpha3 not served).</summary>
    [Fact]
    public async Task Smi_TrafficSplitServedAtV1alpha4Only_PatchesItThere()
    {
        server.ServeOnly(KubernetesResource.SmiTrafficSplit, "v1alpha4");
        server.Store(KubernetesResource.SmiTrafficSplit, "shop", "checkout", Obj("""
            {"service":"checkout","backends":[{"service":"checkout-v1","weight":50},{"service":"checkout-v2","weight":50}]}
            """));

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(Smi: new SmiRollback("checkout", "checkout-v1"))), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal([100, 0], server.Stored(KubernetesResource.SmiTrafficSplit, "shop", "checkout")["spec"]!["backends"]!.AsArray().Select(b => b!["weight"]!.GetValue<int>()));
        Assert.Equal("PATCH /apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits/checkout", server.Requests.Last());
        Assert.Equal(6, server.Requests.Count);
    }

    [Fact]
    public async Task ArgoRollouts_Abort_SetsStatusAbortThroughTheStatusSubresource()
    {
        server.Store(KubernetesResource.ArgoRollout, "shop", "checkout",
            Obj("""{"replicas":3,"strategy":{"canary":{"steps":[{"setWeight":20}]}}}"""),
            Obj("""{"phase":"Progressing","stableRS":"6d5f8b7c9","currentPodHash":"7f9c4d8b6"}"""));

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(ArgoRollouts: new ArgoRolloutsRollback("checkout"))), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal("argoRollouts Rollout shop/checkout: abort", outcome.Action);
        var stored = server.Stored(KubernetesResource.ArgoRollout, "shop", "checkout");
        Assert.True(stored["status"]!["abort"]!.GetValue<bool>());
        Assert.Equal("Progressing", stored["status"]!["phase"]!.GetValue<string>());
        Assert.Equal(3, stored["spec"]!["replicas"]!.GetValue<int>());
        Assert.Equal(
            ["GET /apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout", "PATCH /apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout/status"],
            server.Requests);
    }

    /// <summary>
    /// Hours after the promotion the Rollout's stable ReplicaSet is the new version's: an abort would bring nothing back,
    /// so the action fails, writes nothing, and says what would roll it back.
    /// </summary>
    [Fact]
    public async Task ArgoRollouts_FullyPromoted_FailsWithoutWritingRatherThanReportingARollback()
    {
        server.Store(KubernetesResource.ArgoRollout, "shop", "checkout",
            Obj("""{"replicas":3}"""), Obj("""{"phase":"Healthy","stableRS":"7f9c4d8b6","currentPodHash":"7f9c4d8b6","observedGeneration":"4"}"""),
            generation: 4);

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(ArgoRollouts: new ArgoRolloutsRollback("checkout"))), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Contains("the Rollout is fully promoted (status.stableRS is the current pod template hash, 7f9c4d8b6)", outcome.Detail, StringComparison.Ordinal);
        Assert.Contains("`kubectl argo rollouts undo checkout -n shop`", outcome.Detail, StringComparison.Ordinal);
        Assert.Null(server.Stored(KubernetesResource.ArgoRollout, "shop", "checkout")["status"]!["abort"]);
        Assert.Equal(["GET /apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout"], server.Requests);
    }

    /// <summary>
    /// A new version was just set (generation 5) and the controller has not observed it yet: its status still shows the
    /// version before as fully promoted, but the abort stops the update about to begin, so it is sent.
    /// </summary>
    [Fact]
    public async Task ArgoRollouts_StatusNotYetObservingTheNewSpec_AbortsRatherThanCallingItPromoted()
    {
        server.Store(KubernetesResource.ArgoRollout, "shop", "checkout",
            Obj("""{"replicas":3}"""), Obj("""{"phase":"Healthy","stableRS":"7f9c4d8b6","currentPodHash":"7f9c4d8b6","observedGeneration":"4"}"""),
            generation: 5);

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(ArgoRollouts: new ArgoRolloutsRollback("checkout"))), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.True(server.Stored(KubernetesResource.ArgoRollout, "shop", "checkout")["status"]!["abort"]!.GetValue<bool>());
    }

    [Fact]
    public async Task ArgoRollouts_CrdWithoutStatusSubresource_AbortsOnTheObject()
    {
        server.ArgoRolloutStatus = ArgoRolloutStatus.OnTheObject;
        server.Store(KubernetesResource.ArgoRollout, "shop", "checkout", Obj("""{"replicas":3}"""), Obj("""{"phase":"Progressing"}"""));

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(ArgoRollouts: new ArgoRolloutsRollback("checkout"))), CancellationToken.None);

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.True(server.Stored(KubernetesResource.ArgoRollout, "shop", "checkout")["status"]!["abort"]!.GetValue<bool>());
        Assert.Equal(
            [
                "GET /apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout",
                "PATCH /apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout/status",
                "PATCH /apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout",
            ],
            server.Requests);
    }

    [Fact]
    public async Task ArgoRollouts_AbortPrunedByTheCrdSchema_FailsRatherThanReportingARollback()
    {
        server.ArgoRolloutStatus = ArgoRolloutStatus.Pruned;
        server.Store(KubernetesResource.ArgoRollout, "shop", "checkout", Obj("""{"replicas":3}"""), Obj("""{"phase":"Progressing"}"""));

        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(ArgoRollouts: new ArgoRolloutsRollback("checkout"))), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Contains("status.abort unset", outcome.Detail, StringComparison.Ordinal);
        Assert.Contains("the traffic was not moved", outcome.Detail, StringComparison.Ordinal);
        Assert.Null(server.Stored(KubernetesResource.ArgoRollout, "shop", "checkout")["status"]!["abort"]);
    }

    [Fact]
    public async Task ArgoRollouts_UnknownRollout_FailsWithKubernetesMessage()
    {
        var outcome = await Executor.ExecuteAsync(
            RollbackTestServices.Request(new RollbackAction(ArgoRollouts: new ArgoRolloutsRollback("checkout"))), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Contains("rollouts.argoproj.io \"checkout\" not found", outcome.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoAction_FailsPlainly()
    {
        var outcome = await Executor.ExecuteAsync(RollbackTestServices.Request(new RollbackAction()), CancellationToken.None);

        Assert.False(outcome.Succeeded);
        Assert.Contains("no rollback.action", outcome.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, null, null, "https://kubernetes.default.svc/")]
    [InlineData(null, "10.96.0.1", "6443", "https://10.96.0.1:6443/")]
    [InlineData(null, "fd00::1", "6443", "https://[fd00::1]:6443/")]
    [InlineData("http://127.0.0.1:8001", "10.96.0.1", "443", "http://127.0.0.1:8001/")]
    public void ApiServer_ConfiguredOrInCluster(string? configured, string? host, string? port, string expected)
    {
        var options = new RolloutGate.Infrastructure.KubernetesOptions { ApiServer = configured };

        var url = KubernetesExtensions.ApiServer(options, name => name switch
        {
            "KUBERNETES_SERVICE_HOST" => host,
            "KUBERNETES_SERVICE_PORT" => port,
            _ => null,
        });

        Assert.Equal(expected, url.ToString());
    }
}
