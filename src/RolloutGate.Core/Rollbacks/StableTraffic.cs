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
    /// Gateway API HTTPRoute <c>spec.rules</c> (Linkerd): in every rule that lists the stable backend, that backend gets
    /// weight 100 and every other backend 0; the others stay listed, so a later promotion only changes numbers. A rule
    /// that does not list the stable backend but sends to a backend that such a rule splits with it (the canary, as in
    /// a header-matched rule that sends testers to the canary only) is this service's traffic too: the stable backend is
    /// added to it as the split rules name it (name, namespace, kind, group and port) at weight 100, its others at 0.
    /// Any other rule routes elsewhere (another service) and is left alone; when no rule lists the stable backend at
    /// all, the rewrite is refused, since zeroing every backend would fail all requests.
    /// </summary>
    public static StableTrafficShift HttpRouteRules(JsonArray? rules, string stableBackend)
    {
        ArgumentException.ThrowIfNullOrEmpty(stableBackend);
        var updated = CopyOf(rules);
        var withStable = updated.OfType<JsonObject>().Where(rule => BackendRefs(rule).Any(r => Name(r, "name") == stableBackend)).ToList();
        if (withStable.Count == 0)
        {
            return new StableTrafficShift(updated, false, 0, updated.OfType<JsonObject>().Count(), $"no rule lists the stable backend '{stableBackend}' in backendRefs");
        }

        var others = withStable.SelectMany(BackendRefs).Select(r => Name(r, "name")).Where(name => name is not null && name != stableBackend)
            .ToHashSet(StringComparer.Ordinal);
        // What names the stable backend, without its weight and filters, for a rule that has none.
        var stableInASplit = withStable.SelectMany(BackendRefs).First(r => Name(r, "name") == stableBackend);
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
                if (!BackendRefs(rule).Any(r => others.Contains(Name(r, "name") ?? "")))
                {
                    untouched++;
                    continue;
                }

                rule["backendRefs"]!.AsArray().Add(stableRef.DeepClone());
            }

            changed |= SetWeights(rule["backendRefs"]!.AsArray(), stableBackend, "name");
            rewritten++;
        }

        return new StableTrafficShift(updated, changed, rewritten, untouched);
    }

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

        var changed = SetWeights(updated, stableBackend, "service");
        return new StableTrafficShift(updated, changed, 1, 0);
    }

    /// <summary>Stable 100, others 0; a second entry for the stable backend (another port) also gets 0 so the split is exact.</summary>
    private static bool SetWeights(JsonArray backends, string stableBackend, string nameField)
    {
        var changed = false;
        var stableSeen = false;
        foreach (var backend in backends.OfType<JsonObject>())
        {
            var isStable = !stableSeen && Name(backend, nameField) == stableBackend;
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

        if (route["mirrors"] is JsonArray mirrors)
        {
            foreach (var mirror in mirrors.Where(m => ToOtherSubset(m?["destination"])).ToList())
            {
                mirrors.Remove(mirror);
                dropped = true;
            }

            if (mirrors.Count == 0)
            {
                route.Remove("mirrors");
            }
        }

        return dropped;
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
