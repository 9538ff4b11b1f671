using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using RolloutGate.Kubernetes;

namespace RolloutGate.Tests.Rollbacks;

/// <summary>
/// A local stand-in for the Kubernetes API server, strict the way the real one is about what a rollback sends:
/// <c>/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}[/status]</c> for the served types and versions only (and
/// GET without the name: the list of that type's objects in the namespace), any other path answered as the real one
/// does (a plain-text 404, no Status), one object served at each served version of its type, a bearer token
/// equal to the token file's content, PATCH only as <c>application/merge-patch+json</c>, applied as an RFC 7386 merge
/// patch to the stored object, 409 when the patch names a stale resourceVersion, and Status objects for errors.
/// </summary>
public sealed class FakeKubernetesApiServer : IAsyncDisposable
{
    private static readonly KubernetesResource[] Served =
    [
        KubernetesResource.IstioVirtualService, KubernetesResource.IstioDestinationRule, KubernetesResource.GatewayHttpRoute,
        KubernetesResource.LinkerdHttpRoute, KubernetesResource.SmiTrafficSplit, KubernetesResource.ArgoRollout,
    ];

    private readonly WebApplication app;
    private readonly Dictionary<string, JsonObject> objects = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Group, string Plural), string[]> servedVersions =
        Served.ToDictionary(r => (r.Group, r.Plural), r => r.Versions.Select(v => v.Version).ToArray());
    private readonly ConcurrentQueue<int> failures = new();
    private readonly ConcurrentQueue<int> patchFailures = new();
    private readonly ConcurrentQueue<int> listFailures = new();
    private readonly ConcurrentQueue<int> errorPages = new();
    private readonly ConcurrentDictionary<(string Group, string Plural), bool> forbidden = new();
    private readonly Lock gate = new();
    private Action<JsonObject>? concurrentEdit;
    private Action? afterPatch;
    private Func<Task>? beforeAnswer;

    private FakeKubernetesApiServer(WebApplication app, string tokenFile)
    {
        this.app = app;
        TokenFile = tokenFile;
    }

    public string Url => app.Urls.Single();

    public string TokenFile { get; }

    /// <summary>
    /// The path prefix of a proxy in front of the API server (Rancher's /k8s/clusters/{id}): the API is served under it
    /// as well as at the root.
    /// </summary>
    public const string ProxyPrefix = "/k8s/clusters/c-test";

    /// <summary>Every request's path and query as they arrived, a prefix included, in order.</summary>
    public ConcurrentQueue<string> Targets { get; } = new();

    /// <summary>Every request as "METHOD /path" (without <see cref="ProxyPrefix"/>), in order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>The body of every PATCH that was understood (even one answered 409), in order.</summary>
    public ConcurrentQueue<JsonObject> Patches { get; } = new();

    public static async Task<FakeKubernetesApiServer> StartAsync()
    {
        var tokenFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(tokenFile, "token-1\n");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var server = new FakeKubernetesApiServer(builder.Build(), tokenFile);
        server.app.Use((context, next) =>
        {
            server.Targets.Enqueue($"{context.Request.Path}{context.Request.QueryString}");
            return next(context);
        });
        server.app.Use(async (context, next) =>
        {
            if (server.errorPages.TryDequeue(out var status))
            {
                server.Requests.Enqueue($"{context.Request.Method} {context.Request.Path}");
                await WriteEndlessErrorPageAsync(context, status);
                return;
            }

            await next(context);
        });
        server.app.UsePathBase(FakeKubernetesApiServer.ProxyPrefix);
        // After the path base, so that routes match without it.
        server.app.UseRouting();
        server.app.MapGet("/apis/{group}/{version}/namespaces/{ns}/{plural}", server.ListAsync);
        server.app.MapMethods("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", ["GET", "PATCH"], server.HandleAsync);
        server.app.MapMethods("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/{subresource}", ["GET", "PATCH"], server.HandleAsync);
        await server.app.StartAsync();
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await app.DisposeAsync();
        File.Delete(TokenFile);
    }

    /// <summary>
    /// Stores an object as the API server would serve it; <paramref name="generation"/> is its <c>metadata.generation</c>,
    /// which the API server raises with every change of its spec.
    /// </summary>
    public void Store(KubernetesResource resource, string @namespace, string name, JsonObject spec, JsonObject? status = null, long generation = 1)
    {
        var stored = new JsonObject
        {
            ["apiVersion"] = $"{resource.Group}/{resource.Version}",
            ["kind"] = resource.Kind,
            ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = @namespace, ["resourceVersion"] = "1", ["generation"] = generation },
            ["spec"] = spec,
        };
        if (status is not null)
        {
            stored["status"] = status;
        }

        lock (gate)
        {
            objects[Key(resource.Group, @namespace, resource.Plural, name)] = stored;
        }
    }

    public JsonObject Stored(KubernetesResource resource, string @namespace, string name)
    {
        lock (gate)
        {
            return (JsonObject)objects[Key(resource.Group, @namespace, resource.Plural, name)].DeepClone();
        }
    }

    /// <summary>
    /// The type's CRD serves only these versions (by default it serves the type's version and all its older ones); none:
    /// the CRD is not installed. Any other version's paths answer the API server's plain-text 404.
    /// </summary>
    public void ServeOnly(KubernetesResource resource, params string[] versions)
    {
        lock (gate)
        {
            servedVersions[(resource.Group, resource.Plural)] = versions;
        }
    }

    /// <summary>How the served Rollout CRD takes <c>status</c>: through its status subresource (the default, as Argo
    /// Rollouts installs it), on the object itself (a CRD without the subresource), or not at all (a CRD whose
    /// structural schema has no <c>status.abort</c>, which the API server prunes silently).</summary>
    public ArgoRolloutStatus ArgoRolloutStatus { get; set; } = ArgoRolloutStatus.Subresource;

    /// <summary>
    /// The next requests answer these HTTP statuses instead of being served, each as the API server writes it: a Status
    /// object with the reason of its code and details naming the object, and for 429 and 503 a Retry-After
    /// (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#http-status-codes).
    /// </summary>
    public void FailNext(params int[] statuses)
    {
        foreach (var status in statuses)
        {
            failures.Enqueue(status);
        }
    }

    /// <summary>
    /// The service account may not touch this type (RBAC without it): every request on it answers 403, as the API
    /// server's authorizer does, whether the object exists or not.
    /// </summary>
    public void Forbid(KubernetesResource resource) => forbidden[(resource.Group, resource.Plural)] = true;

    /// <summary>The next PATCH requests answer these HTTP statuses, as <see cref="FailNext"/>; the reads before them are served.</summary>
    public void FailNextPatch(params int[] statuses)
    {
        foreach (var status in statuses)
        {
            patchFailures.Enqueue(status);
        }
    }

    /// <summary>The next list requests answer these HTTP statuses, as <see cref="FailNext"/>; reads and patches of one object are served.</summary>
    public void FailNextList(params int[] statuses)
    {
        foreach (var status in statuses)
        {
            listFailures.Enqueue(status);
        }
    }

    /// <summary>
    /// The next request is answered by a proxy in front of the API server (Rancher, a corporate gateway) with an HTML
    /// error page that never ends, instead of a Status object.
    /// </summary>
    public void AnswerNextWithAnEndlessErrorPage(int status) => errorPages.Enqueue(status);

    private static async Task WriteEndlessErrorPageAsync(HttpContext context, int status)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html";
        var aborted = context.RequestAborted;
        await context.Response.WriteAsync("<html><body>", aborted);
        var chunk = System.Text.Encoding.UTF8.GetBytes(new string('x', 8192));
        while (!aborted.IsCancellationRequested)
        {
            await context.Response.Body.WriteAsync(chunk, aborted);
        }
    }

    /// <summary>Another writer edits the object just before the next PATCH arrives, so that PATCH's resourceVersion is stale.</summary>
    public void EditConcurrentlyBeforeNextPatch(Action<JsonObject> edit) => concurrentEdit = edit;

    /// <summary>Runs once the next PATCH has been applied, before it is answered.</summary>
    public void AfterNextPatch(Action action) => afterPatch = action;

    /// <summary>Runs, and is awaited, when the next request of any kind arrives, before it is answered (or fails as <see cref="FailNext"/> says).</summary>
    public void BeforeNextAnswer(Func<Task> action) => beforeAnswer = action;

    private async Task BeforeAnswerAsync()
    {
        if (Interlocked.Exchange(ref beforeAnswer, null) is { } action)
        {
            await action();
        }
    }

    /// <summary>
    /// A list as the API server answers it: <c>{Kind}List</c> with the collection's resourceVersion and the objects of
    /// the namespace in <c>items</c>, ordered by name (etcd's key order).
    /// </summary>
    private async Task<IResult> ListAsync(HttpContext context, string group, string version, string ns, string plural)
    {
        Requests.Enqueue($"{context.Request.Method} {context.Request.Path}");
        await BeforeAnswerAsync();
        if (failures.TryDequeue(out var failure) || listFailures.TryDequeue(out failure))
        {
            return Failure(context, failure, ns, group, plural, name: null);
        }

        var token = (await File.ReadAllTextAsync(TokenFile)).Trim();
        if (context.Request.Headers.Authorization.ToString() != $"Bearer {token}")
        {
            return Status(401, "Unauthorized", "Unauthorized");
        }

        if (ServedResource(group, version, plural) is not { } resource)
        {
            return NotServed();
        }

        var prefix = Key(group, ns, plural, "");
        lock (gate)
        {
            var items = objects.Where(o => o.Key.StartsWith(prefix, StringComparison.Ordinal)).OrderBy(o => o.Key, StringComparer.Ordinal)
                .Select(o => (JsonNode)AtVersion(o.Value, group, version)).ToArray();
            return Json(new JsonObject
            {
                ["apiVersion"] = $"{group}/{version}",
                ["kind"] = $"{resource.Kind}List",
                ["metadata"] = new JsonObject { ["resourceVersion"] = "1" },
                ["items"] = new JsonArray(items),
            });
        }
    }

    private async Task<IResult> HandleAsync(HttpContext context, string group, string version, string ns, string plural, string name, string? subresource = null)
    {
        var request = context.Request;
        Requests.Enqueue($"{request.Method} {request.Path}");
        await BeforeAnswerAsync();
        if (failures.TryDequeue(out var failure))
        {
            return Failure(context, failure, ns, group, plural, name);
        }

        var token = (await File.ReadAllTextAsync(TokenFile)).Trim();
        if (request.Headers.Authorization.ToString() != $"Bearer {token}")
        {
            return Status(401, "Unauthorized", "Unauthorized");
        }

        if (forbidden.ContainsKey((group, plural)))
        {
            return Failure(context, 403, ns, group, plural, name);
        }

        if (ServedResource(group, version, plural) is not { } resource)
        {
            return NotServed();
        }

        // A subresource the CRD does not have: the API server's CRD handler answers NotFound naming the object.
        var knownSubresource = subresource is null
            || (subresource == "status" && resource == KubernetesResource.ArgoRollout && ArgoRolloutStatus == ArgoRolloutStatus.Subresource);
        if (!knownSubresource)
        {
            return Status(404, "NotFound", $"{plural}.{group} \"{name}\" not found");
        }

        var key = Key(group, ns, plural, name);
        lock (gate)
        {
            if (!objects.TryGetValue(key, out _))
            {
                return Status(404, "NotFound", $"{plural}.{group} \"{name}\" not found");
            }
        }

        if (HttpMethods.IsGet(request.Method))
        {
            return subresource is null ? Json(AtVersion(Stored(resource, ns, name), group, version)) : Status(405, "MethodNotAllowed", "GET on a subresource is not used by rollbacks");
        }

        if (patchFailures.TryDequeue(out var patchFailure))
        {
            return Failure(context, patchFailure, ns, group, plural, name);
        }

        if (request.ContentType != "application/merge-patch+json")
        {
            return Status(415, "UnsupportedMediaType",
                $"the body of the request was in an unknown format ({request.ContentType}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml");
        }

        JsonObject patch;
        try
        {
            patch = JsonNode.Parse(await new StreamReader(request.Body).ReadToEndAsync()) as JsonObject
                ?? throw new FormatException("not an object");
        }
        catch (Exception exception) when (exception is FormatException or System.Text.Json.JsonException)
        {
            return Status(400, "BadRequest", $"error decoding patch: {exception.Message}");
        }

        Patches.Enqueue((JsonObject)patch.DeepClone());

        lock (gate)
        {
            var stored = objects[key];
            if (Interlocked.Exchange(ref concurrentEdit, null) is { } edit)
            {
                edit(stored);
                BumpResourceVersion(stored);
            }

            var presented = patch["metadata"]?["resourceVersion"]?.GetValue<string>();
            if (presented is not null && presented != stored["metadata"]!["resourceVersion"]!.GetValue<string>())
            {
                return Status(409, "Conflict",
                    $"Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again");
            }

            // The status subresource takes only status; the main resource ignores status when a status subresource exists.
            var effective = subresource == "status"
                ? new JsonObject { ["status"] = patch["status"]?.DeepClone() }
                : patch;
            if (subresource is null && resource == KubernetesResource.ArgoRollout && ArgoRolloutStatus != ArgoRolloutStatus.OnTheObject)
            {
                effective.Remove("status");
            }

            var updated = (JsonObject)MergePatch(stored, effective)!;
            BumpResourceVersion(updated);
            objects[key] = updated;
            Interlocked.Exchange(ref afterPatch, null)?.Invoke();
            return Json(AtVersion(updated, group, version));
        }
    }

    /// <summary>RFC 7386: objects merge member by member, null removes a member, anything else (lists too) replaces.</summary>
    public static JsonNode? MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject patchObject)
        {
            return patch?.DeepClone();
        }

        var result = target is JsonObject targetObject ? (JsonObject)targetObject.DeepClone() : [];
        foreach (var (name, value) in patchObject)
        {
            if (value is null)
            {
                result.Remove(name);
            }
            else
            {
                result[name] = MergePatch(result[name], value);
            }
        }

        return result;
    }

    private static void BumpResourceVersion(JsonObject stored)
    {
        var metadata = stored["metadata"]!.AsObject();
        metadata["resourceVersion"] = (int.Parse(metadata["resourceVersion"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) + 1)
            .ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>One object whatever the version it is asked at, as the API server stores it (a CRD without conversion webhook converts only apiVersion).</summary>
    private static string Key(string group, string ns, string plural, string name) => $"{group}/{ns}/{plural}/{name}";

    private KubernetesResource? ServedResource(string group, string version, string plural)
    {
        lock (gate)
        {
            return Served.SingleOrDefault(r => r.Group == group && r.Plural == plural) is { } resource
                && servedVersions[(group, plural)].Contains(version, StringComparer.Ordinal)
                    ? resource
                    : null;
        }
    }

    /// <summary>A copy of a stored object as served at <paramref name="version"/>.</summary>
    private static JsonObject AtVersion(JsonObject stored, string group, string version)
    {
        var served = (JsonObject)stored.DeepClone();
        served["apiVersion"] = $"{group}/{version}";
        return served;
    }

    /// <summary>
    /// What the API server answers for a path it does not serve (a group, version or type it has not): its not-found
    /// handler's plain text, no Status object (k8s.io/apiserver/pkg/util/notfoundhandler, http.NotFound).
    /// </summary>
    private static IResult NotServed() => Results.Text("404 page not found\n", "text/plain; charset=utf-8", statusCode: 404);

    private static IResult Json(JsonObject body) => Results.Content(body.ToJsonString(), "application/json");

    /// <summary>
    /// What the API server answers for <paramref name="code"/>, in its words: 400 an admission webhook's denial over several
    /// lines; the 403 of RBAC names the user, verb and
    /// resource; 422 the field it refused (here a subset no DestinationRule defines, as an admission check would);
    /// 429 (API priority and fairness) and 503 say when to come back, in the Retry-After header and in details.
    /// </summary>
    private static IResult Failure(HttpContext context, int code, string ns, string group, string plural, string? name)
    {
        var verb = name is null ? "list" : HttpMethods.IsGet(context.Request.Method) ? "get" : "patch";
        // The API server names the object it refused, or only the type for a list.
        var target = name is null ? $"{plural}.{group}" : $"{plural}.{group} \"{name}\"";
        var kind = Served.SingleOrDefault(r => r.Group == group && r.Plural == plural)?.Kind ?? plural;
        var (reason, message) = code switch
        {
            // An admission webhook's denial (a policy engine's, one violation a line); 400 when the webhook sets no code.
            400 => ("BadRequest",
                "admission webhook \"validation.policies.example\" denied the request:\n[require-owner] the object must have label owner\n[change-window] no changes to shop before 08:00"),
            403 => ("Forbidden",
                $"{target} is forbidden: User \"system:serviceaccount:rolloutgate:rolloutgate\" cannot {verb} resource \"{plural}\" in API group \"{group}\" in the namespace \"{ns}\""),
            404 => ("NotFound", $"{target} not found"),
            409 => ("Conflict",
                $"Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
            422 => ("Invalid", $"{kind}.{group} \"{name}\" is invalid: spec.http[0].route[0].destination.subset: Invalid value: \"stable\": no DestinationRule of host checkout defines this subset"),
            429 => ("TooManyRequests", "Too many requests, please try again later."),
            500 => ("InternalError", "Internal error occurred: failed calling webhook"),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
            504 => ("Timeout", "Timeout: request did not complete within requested timeout"),
            _ => throw new ArgumentOutOfRangeException(nameof(code), code, "not an answer of the API server's this fake knows"),
        };
        var details = new JsonObject { ["group"] = group, ["kind"] = plural };
        if (name is not null)
        {
            details["name"] = name;
        }

        if (code is 429 or 503)
        {
            context.Response.Headers.RetryAfter = "1";
            details["retryAfterSeconds"] = 1;
        }

        return Status(code, reason, message, details);
    }

    private static IResult Status(int code, string reason, string message, JsonObject? details = null)
    {
        var status = new JsonObject
        {
            ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Failure",
            ["message"] = message, ["reason"] = reason, ["code"] = code,
        };
        if (details is not null)
        {
            status["details"] = details;
        }

        return Results.Content(status.ToJsonString(), "application/json", statusCode: code);
    }
}

public enum ArgoRolloutStatus
{
    Subresource,
    OnTheObject,
    Pruned,
}
