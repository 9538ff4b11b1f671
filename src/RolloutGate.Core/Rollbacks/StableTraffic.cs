using System.Text.Json.Nodes;

namespace RolloutGate.Core.Rollbacks;

/// <summary>
/// The new routing list a rollback writes: everything a route sends to the canary goes to the stable version instead.
/// <see cref="Updated"/> is a fresh copy (the input is never modified); <see cref="Changed"/> is false when the
/// resource already sent all its traffic to stable, so the caller need not write it. <see cref="Problem"/> is set when
/// no safe rewrite exists (for example no route mentions the stable backend); the caller must then write nothing.
/// </summary>
public sealed record StableTrafficShift(JsonArray Updated, bool Changed, int Rewritten, int Untouched, string? Problem = null);

/// <summary>
/// Pure rewrites of mesh routing lists (JSON as the Kubernetes API serves it), so a rollback's effect on traffic
/// can be unit-tested without an API server. Every field the rewrite does not mention is kept as it was.
/// </summary>
public static class StableTraffic
{
    public const int AllTraffic = 100;

    /// <summary>
    /// Istio VirtualService: every <c>spec.http</c> route of this service (<paramref name="service"/>) keeps one
    /// destination, the stable subset, at weight 100. A route is this service's when one of its destinations has one of
    /// the service's hosts (<see cref="ServiceHosts"/>); all of that route's traffic then goes to stable, other hosts in it
    /// included. The destination already pointing at the stable subset is kept whole (host, port, headers); when a route
    /// has none, the host and port of its first destination of this service that has a subset are reused with the stable
    /// subset. Such a route's mirrors to another subset of this service (the canary) are removed too
    /// (<see cref="DropMirrorsToOtherSubsets"/>). Routes to other hosts only, and routes without a <c>route</c> list
    /// (redirects, direct responses), are left exactly as they are.
    /// The rewrite is refused (<see cref="StableTrafficShift.Problem"/>) rather than guessed when a route sends to this
    /// service without any subset (a split by host, or the whole service: a subset may not exist there), when a
    /// <c>tcp</c> or <c>tls</c> route sends to this service (only http routes are rewritten), and when no http route
    /// sends to this service at all: nothing rolled back is not a rollback.
    /// </summary>
    public static StableTrafficShift IstioHttpRoutes(JsonObject? spec, ServiceHosts service, string stableSubset)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentException.ThrowIfNullOrEmpty(stableSubset);
        var updated = CopyOf(spec?["http"] as JsonArray);
        foreach (var kind in new[] { "tcp", "tls" })
        {
            var routes = spec?[kind] as JsonArray ?? [];
            for (var i = 0; i < routes.Count; i++)
            {
                if (Destinations(routes[i]).Any(d => service.Matches(Host(d))))
                {
                    return IstioRefused(spec, $"{RouteLabel(kind, i, routes[i])} sends traffic to {service.Name}; the istio action rewrites http routes only, so roll this service back by other means");
                }
            }
        }

        int rewritten = 0, untouched = 0;
        var changed = false;
        var otherHosts = new List<string>();
        for (var i = 0; i < updated.Count; i++)
        {
            var destinations = Destinations(updated[i]);
            var ours = destinations.Where(d => service.Matches(Host(d))).ToList();
            if (ours.Count == 0)
            {
                otherHosts.AddRange(destinations.Select(Host).OfType<string>());
                untouched++;
                continue;
            }

            if (ours.All(d => Subset(d) is null))
            {
                var hosts = string.Join(", ", ours.Select(Host).Distinct(StringComparer.Ordinal));
                return IstioRefused(spec, $"{RouteLabel("http", i, updated[i])} sends traffic to {hosts} without a subset, so it cannot be moved to subset '{stableSubset}'; roll this service back by other means");
            }

            var stable = ours.FirstOrDefault(d => Subset(d) == stableSubset);
            JsonObject kept;
            if (stable is not null)
            {
                kept = (JsonObject)stable.DeepClone();
            }
            else
            {
                var template = ours.First(d => Subset(d) is not null)["destination"]!;
                var destination = new JsonObject { ["host"] = template["host"]?.DeepClone() };
                if (template["port"] is { } port)
                {
                    destination["port"] = port.DeepClone();
                }

                destination["subset"] = stableSubset;
                kept = new JsonObject { ["destination"] = destination };
            }

            kept["weight"] = AllTraffic;
            var alreadyStable = destinations.Count == 1 && stable is not null && IsAllTraffic(stable["weight"]);
            if (!alreadyStable)
            {
                updated[i]!["route"] = new JsonArray(kept);
                changed = true;
            }

            changed |= DropMirrorsToOtherSubsets((JsonObject)updated[i]!, service, stableSubset);

            rewritten++;
        }

        if (rewritten == 0)
        {
            var seen = otherHosts.Count == 0 ? "" : $" (its routes send to {string.Join(", ", otherHosts.Distinct(StringComparer.Ordinal))})";
            return IstioRefused(spec, $"no http route sends traffic to {service.Name}{seen}");
        }

        return new StableTrafficShift(updated, changed, rewritten, untouched);
    }

    /// <summary>
    /// HTTPRoute <c>spec.rules</c> (Linkerd), the Gateway API's or Linkerd's own (<c>policy.linkerd.io</c>, with the same
    /// rules and backendRefs): in every rule that lists the stable backend, that backend gets weight 100 and every other
    /// backend 0; the others stay listed, so a later promotion only changes numbers. The
    /// stable backend is the Service <paramref name="stableBackend"/> in the route's namespace
    /// (<paramref name="routeNamespace"/>): a backendRef names it when its name is that, its kind <c>Service</c> or unset,
    /// its group the core group (<c>""</c> or <c>core</c>, or unset) and its namespace the route's or unset
    /// (<see cref="BackendKey"/>); one of that name in another namespace, or of another kind, is another backend. A rule
    /// that does not list the stable backend but sends to a backend that such a rule splits with it (the canary, as in
    /// a header-matched rule that sends testers to the canary only) is this service's traffic too: the stable backend is
    /// added to it as the split rules name it (name, namespace, kind, group and port) at weight 100, its others at 0.
    /// The rules rewritten also lose their <c>RequestMirror</c> filters (of the rule, or of one of its backendRefs) to such
    /// a backend (<see cref="DropMirrorsTo"/>). Any other rule routes elsewhere (another service) and is left alone; when
    /// no rule lists the stable backend at all, the rewrite is refused, since zeroing every backend would fail all requests.
    /// </summary>
    public static StableTrafficShift HttpRouteRules(JsonArray? rules, string routeNamespace, string stableBackend)
    {
        ArgumentException.ThrowIfNullOrEmpty(routeNamespace);
        ArgumentException.ThrowIfNullOrEmpty(stableBackend);
        var updated = CopyOf(rules);
        var stable = new BackendKey("", "Service", routeNamespace, stableBackend);
        bool IsStable(JsonObject reference) => BackendKey.Of(reference, routeNamespace) == stable;
        var withStable = updated.OfType<JsonObject>().Where(rule => BackendRefs(rule).Any(IsStable)).ToList();
        if (withStable.Count == 0)
        {
            var alike = updated.OfType<JsonObject>().SelectMany(BackendRefs).Where(r => Name(r, "name") == stableBackend)
                .Select(r => BackendKey.Of(r, routeNamespace).ToString()).Distinct(StringComparer.Ordinal).ToList();
            var elsewhere = alike.Count == 0 ? "" : $" (the Service {routeNamespace}/{stableBackend}; the route's {string.Join(", ", alike)} is another backend)";
            return new StableTrafficShift(updated, false, 0, updated.OfType<JsonObject>().Count(), $"no rule lists the stable backend '{stableBackend}' in backendRefs{elsewhere}");
        }

        var others = withStable.SelectMany(BackendRefs).Where(r => !IsStable(r)).Select(r => BackendKey.Of(r, routeNamespace)).ToHashSet();
        // What names the stable backend, without its weight and filters, for a rule that has none.
        var stableInASplit = withStable.SelectMany(BackendRefs).First(IsStable);
        var stableRef = new JsonObject();
        foreach (var field in new[] { "group", "kind", "name", "namespace", "port" })
        {
            if (stableInASplit[field] is { } value)
            {
                stableRef[field] = value.DeepClone();
            }
        }

        int rewritten = 0, untouched = 0;
        var changed = false;
        foreach (var rule in updated.OfType<JsonObject>())
        {
            if (!withStable.Contains(rule))
            {
                if (!BackendRefs(rule).Any(r => others.Contains(BackendKey.Of(r, routeNamespace))))
                {
                    untouched++;
                    continue;
                }

                rule["backendRefs"]!.AsArray().Add(stableRef.DeepClone());
            }

            changed |= SetWeights(rule["backendRefs"]!.AsArray(), IsStable);
            changed |= DropMirrorsTo(rule, others, routeNamespace);
            foreach (var reference in BackendRefs(rule))
            {
                changed |= DropMirrorsTo(reference, others, routeNamespace);
            }

            rewritten++;
        }

        return new StableTrafficShift(updated, changed, rewritten, untouched);
    }

    /// <summary>
    /// Who a Gateway API backend reference (a backendRef, or a RequestMirror filter's) names, its defaults filled in: the
    /// core group (<c>""</c>, which Linkerd also takes <c>core</c> for), kind <c>Service</c>, the route's namespace.
    /// </summary>
    private readonly record struct BackendKey(string Group, string Kind, string Namespace, string? Name)
    {
        public static BackendKey Of(JsonNode? reference, string routeNamespace) => new(
            Text(reference?["group"]) is { Length: > 0 } group && group != "core" ? group : "",
            Text(reference?["kind"]) is { Length: > 0 } kind ? kind : "Service",
            Text(reference?["namespace"]) is { Length: > 0 } @namespace ? @namespace : routeNamespace,
            Text(reference?["name"]));

        public override string ToString() =>
            Group.Length == 0 ? $"{Kind} {Namespace}/{Name}" : $"{Kind}.{Group} {Namespace}/{Name}";
    }

    /// <summary>
    /// Removes from the <c>filters</c> of <paramref name="owner"/> (an HTTPRoute rule or one of its backendRefs) each
    /// <c>RequestMirror</c> filter whose <c>requestMirror.backendRef</c> is one of <paramref name="backends"/>, whatever its
    /// <c>percent</c> or <c>fraction</c> (the list itself once empty). The mirrored copy's answer is thrown away, but the
    /// canary still serves it, its writes and calls included, as with Istio's mirrors (<see cref="DropMirrorsToOtherSubsets"/>).
    /// True when something was removed.
    /// </summary>
    private static bool DropMirrorsTo(JsonObject owner, HashSet<BackendKey> backends, string routeNamespace) =>
        RemoveEntries(owner, "filters", filter =>
            Text(filter["type"]) == "RequestMirror" && backends.Contains(BackendKey.Of(filter["requestMirror"]?["backendRef"], routeNamespace)));

    private static IEnumerable<JsonObject> BackendRefs(JsonObject rule) => rule["backendRefs"] is JsonArray refs ? refs.OfType<JsonObject>() : [];

    /// <summary>SMI TrafficSplit <c>spec.backends</c>: the stable service weight 100, every other backend 0.</summary>
    public static StableTrafficShift TrafficSplitBackends(JsonArray? backends, string stableBackend)
    {
        ArgumentException.ThrowIfNullOrEmpty(stableBackend);
        var updated = CopyOf(backends);
        if (!updated.OfType<JsonObject>().Any(b => Name(b, "service") == stableBackend))
        {
            return new StableTrafficShift(updated, false, 0, 0, $"no backend is the stable service '{stableBackend}'");
        }

        var changed = SetWeights(updated, b => Name(b, "service") == stableBackend);
        return new StableTrafficShift(updated, changed, 1, 0);
    }

    /// <summary>Stable 100, others 0; a second entry for the stable backend (another port) also gets 0 so the split is exact.</summary>
    private static bool SetWeights(JsonArray backends, Func<JsonObject, bool> isStableBackend)
    {
        var changed = false;
        var stableSeen = false;
        foreach (var backend in backends.OfType<JsonObject>())
        {
            var isStable = !stableSeen && isStableBackend(backend);
            stableSeen |= isStable;
            var weight = isStable ? AllTraffic : 0;
            if (backend["weight"] is not JsonValue current || !current.TryGetValue<int>(out var value) || value != weight)
            {
                backend["weight"] = weight;
                changed = true;
            }
        }

        return changed;
    }

    private static JsonArray CopyOf(JsonArray? list) => list is null ? [] : (JsonArray)list.DeepClone();

    /// <summary>
    /// Removes from <paramref name="route"/> what mirrors its requests to a subset of this service other than the stable
    /// one: <c>mirror</c> with its <c>mirrorPercentage</c> (and the deprecated <c>mirrorPercent</c>), and each such entry of
    /// <c>mirrors</c> (the list itself once empty). Envoy throws the mirrored copy's answer away, but the canary still
    /// serves it, its writes and calls included, so a rolled-back version left a mirror would go on acting on every
    /// request. A mirror to another host, to the stable subset, or to the whole service (no subset) is kept. True when
    /// something was removed.
    /// </summary>
    private static bool DropMirrorsToOtherSubsets(JsonObject route, ServiceHosts service, string stableSubset)
    {
        bool ToOtherSubset(JsonNode? destination) =>
            service.Matches(Text(destination?["host"])) && Text(destination?["subset"]) is { } subset && subset != stableSubset;

        var dropped = false;
        if (ToOtherSubset(route["mirror"]))
        {
            route.Remove("mirror");
            route.Remove("mirrorPercentage");
            route.Remove("mirrorPercent");
            dropped = true;
        }

        return RemoveEntries(route, "mirrors", mirror => ToOtherSubset(mirror["destination"])) | dropped;
    }

    /// <summary>
    /// Removes from <paramref name="owner"/>'s list <paramref name="field"/> each entry that <paramref name="matches"/>, and
    /// the list itself once that empties it (a list that was empty already stays as it is). True when something was removed.
    /// </summary>
    private static bool RemoveEntries(JsonObject owner, string field, Func<JsonObject, bool> matches)
    {
        if (owner[field] is not JsonArray list)
        {
            return false;
        }

        var removed = list.OfType<JsonObject>().Where(matches).ToList();
        foreach (var entry in removed)
        {
            list.Remove(entry);
        }

        if (removed.Count > 0 && list.Count == 0)
        {
            owner.Remove(field);
        }

        return removed.Count > 0;
    }

    /// <summary>A refused Istio rewrite: its list is the stored one, untouched (nothing may be written anyway).</summary>
    private static StableTrafficShift IstioRefused(JsonObject? spec, string problem) =>
        new(CopyOf(spec?["http"] as JsonArray), false, 0, 0, problem);

    /// <summary>The destinations of an Istio route (http, tcp or tls: the same shape); none for a redirect or direct response.</summary>
    private static List<JsonObject> Destinations(JsonNode? route) =>
        route is JsonObject r && r["route"] is JsonArray destinations ? destinations.OfType<JsonObject>().ToList() : [];

    /// <summary>How a message names a route: <c>http route 'primary' (http[0])</c>, or <c>http route http[1]</c> without a name.</summary>
    private static string RouteLabel(string kind, int index, JsonNode? route) =>
        route is JsonObject r && Text(r["name"]) is { } text
            ? $"{kind} route '{text}' ({kind}[{index}])"
            : $"{kind} route {kind}[{index}]";

    private static string? Host(JsonObject destination) => Text(destination["destination"]?["host"]);

    private static string? Subset(JsonObject destination) => Text(destination["destination"]?["subset"]);

    private static string? Name(JsonObject backend, string field) => Text(backend[field]);

    /// <summary>The node's text when it is a JSON string; null when it is absent or anything else.</summary>
    internal static string? Text(JsonNode? node) => node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    /// <summary>Istio treats a single destination without a weight as all traffic.</summary>
    private static bool IsAllTraffic(JsonNode? weight) =>
        weight is null || (weight is JsonValue value && value.TryGetValue<int>(out var number) && number == AllTraffic);
}
