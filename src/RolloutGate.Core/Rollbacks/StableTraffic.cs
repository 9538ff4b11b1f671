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
    /// Istio VirtualService <c>spec.http</c>: every route that has a <c>route</c> list keeps one destination, the stable
    /// subset, at weight 100. The destination already pointing at that subset is kept whole (host, port, headers);
    /// when a route has none, the first destination's host and port are reused with the stable subset.
    /// Routes without a <c>route</c> list (redirects, direct responses) do not send traffic to a version and are left alone.
    /// </summary>
    public static StableTrafficShift IstioHttpRoutes(JsonArray? http, string stableSubset)
    {
        ArgumentException.ThrowIfNullOrEmpty(stableSubset);
        var updated = CopyOf(http);
        int rewritten = 0, untouched = 0;
        var changed = false;
        foreach (var route in updated.OfType<JsonObject>())
        {
            if (route["route"] is not JsonArray destinations || destinations.Count == 0)
            {
                untouched++;
                continue;
            }

            var stable = destinations.OfType<JsonObject>().FirstOrDefault(d => Subset(d) == stableSubset);
            JsonObject kept;
            if (stable is not null)
            {
                kept = (JsonObject)stable.DeepClone();
            }
            else
            {
                var first = destinations[0] as JsonObject;
                var destination = new JsonObject { ["host"] = first?["destination"]?["host"]?.DeepClone() };
                if (first?["destination"]?["port"] is { } port)
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
                route["route"] = new JsonArray(kept);
                changed = true;
            }

            rewritten++;
        }

        return new StableTrafficShift(updated, changed, rewritten, untouched);
    }

    /// <summary>
    /// Gateway API HTTPRoute <c>spec.rules</c> (Linkerd): in every rule that lists the stable backend, that backend gets
    /// weight 100 and every other backend 0; the others stay listed, so a later promotion only changes numbers.
    /// A rule that does not list the stable backend routes elsewhere (another service) and is left alone; when no rule
    /// lists it at all, the rewrite is refused, since zeroing every backend would fail all requests.
    /// </summary>
    public static StableTrafficShift HttpRouteRules(JsonArray? rules, string stableBackend)
    {
        ArgumentException.ThrowIfNullOrEmpty(stableBackend);
        var updated = CopyOf(rules);
        int rewritten = 0, untouched = 0;
        var changed = false;
        foreach (var rule in updated.OfType<JsonObject>())
        {
            if (rule["backendRefs"] is not JsonArray refs || !refs.OfType<JsonObject>().Any(r => Name(r, "name") == stableBackend))
            {
                untouched++;
                continue;
            }

            changed |= SetWeights(refs, stableBackend, "name");
            rewritten++;
        }

        return rewritten == 0
            ? new StableTrafficShift(updated, false, 0, untouched, $"no rule lists the stable backend '{stableBackend}' in backendRefs")
            : new StableTrafficShift(updated, changed, rewritten, untouched);
    }

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

    private static string? Subset(JsonObject destination) =>
        destination["destination"]?["subset"] is JsonValue subset && subset.TryGetValue<string>(out var text) ? text : null;

    private static string? Name(JsonObject backend, string field) =>
        backend[field] is JsonValue name && name.TryGetValue<string>(out var text) ? text : null;

    /// <summary>Istio treats a single destination without a weight as all traffic.</summary>
    private static bool IsAllTraffic(JsonNode? weight) =>
        weight is null || (weight is JsonValue value && value.TryGetValue<int>(out var number) && number == AllTraffic);
}
