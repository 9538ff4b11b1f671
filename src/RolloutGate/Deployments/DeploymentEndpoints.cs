using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Api;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Infrastructure.Http;
using RolloutGate.Operations;
using RolloutGate.Runbooks;
using RolloutGate.Watch;
using RolloutGate.Webhooks;

namespace RolloutGate.Deployments;

public static class DeploymentEndpoints
{
    public const string DeliveryHeader = "X-RolloutGate-Delivery";

    /// <summary>The delivery id for senders that can template a URL but not per-message headers (Argo CD notifications).</summary>
    public const string DeliveryQueryParameter = "delivery";

    /// <summary>
    /// The delivery id of a webhook that names none (CONTRACT section 4 lists the header but no refusal for its absence):
    /// this prefix and the body's SHA-256, so a retry of the same bytes is the same delivery and gets the first answer.
    /// </summary>
    public const string BodyDeliveryPrefix = "body-sha256:";
    public const int MaxBodyBytes = 64 * 1024;

    /// <summary>As the webhook's: a field given twice is refused, so that the body means one thing to every reader.</summary>
    private static readonly System.Text.Json.JsonSerializerOptions OperatorJson = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        AllowDuplicateProperties = false,
    };

    public static IEndpointRouteBuilder MapDeploymentsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/deployments").WithTags("Deployments");
        // The handler reads the raw bytes (the signature covers them), so the document is described here.
        group.MapPost("/", ReceiveWebhookAsync).DisableAntiforgery()
            .WithSummary("CD webhook: predeploy, deployed, rolledback or cancelled (signed, or with a webhook bearer token)")
            // Any content type: the body is read as JSON whatever the header says (curl -d sends a form type), and a
            // content type alone must not turn a 401 or a 400 into a 415.
            .Accepts<WebhookRequest>("application/json", "*/*")
            .Produces<PreDeployResponse>(StatusCodes.Status200OK)
            .Produces<DeployedResponse>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);

        var reads = group.MapGroup("").RequireApiToken(ApiRole.Reader);
        reads.MapGet("/", ListAsync).Produces<DeploymentPage>().WithSummary("Deployments, newest first, a page at a time (next, passed as after); Accept: text/csv for CSV");
        reads.MapGet("/{id}", GetAsync).Produces<DeploymentView>().ProducesProblem(StatusCodes.Status404NotFound)
            .WithMetadata(new BrowserPage("/dashboard/deployments/"));

        var decisions = group.MapGroup("/{id}").RequireApiToken(ApiRole.Operator);
        foreach (var kind in new[] { DecisionKinds.Stop, DecisionKinds.Rollback, DecisionKinds.Dismiss })
        {
            decisions.MapPost($"/{kind}", (string id, HttpRequest request, DeploymentDecisions decide, CancellationToken cancellationToken) =>
                DecideAsync(id, kind, request, decide, cancellationToken));
        }

        return app;
    }

    /// <summary>The CD webhook (CONTRACT section 4): authenticate the raw bytes, parse, then apply exactly once.</summary>
    private static async Task<IResult> ReceiveWebhookAsync(
        HttpRequest request, WebhookAuthenticator authenticator, WebhookProcessor processor, RolloutGateMetrics metrics, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var body = await ReadBodyAsync(request, cancellationToken);
        if (body is null)
        {
            metrics.WebhookRefused("too-large");
            return BodyTooLarge();
        }

        var authentication = authenticator.Authenticate(request, body);
        if (authentication.Refusal is { } refusal)
        {
            metrics.WebhookRefused("unauthenticated");
            return Problems.Unauthorized(refusal);
        }

        var (parsed, error) = WebhookRequestParser.Parse(body, time.GetUtcNow(), authenticator.TimestampTolerance);
        var bodySha256 = Convert.ToHexStringLower(SHA256.HashData(body));
        var (deliveryId, deliveryRefusal) = DeliveryId(request, bodySha256);
        if (deliveryId is null)
        {
            // Authenticated, so on the record as any refused webhook (CONTRACT section 7), under the deployment the body
            // names if it can be read; the id itself is not kept: it may hold a line break or run to any length.
            metrics.WebhookRefused("malformed");
            await processor.RecordRefusalAsync(null, parsed, StatusCodes.Status400BadRequest, deliveryRefusal);
            return Problems.BadRequest(deliveryRefusal!);
        }

        if (authentication.WithPreviousSecret)
        {
            authenticator.SignedWithPreviousSecret(deliveryId, parsed?.Service);
        }

        if (parsed is null)
        {
            metrics.WebhookRefused("malformed");
            await processor.RecordRefusalAsync(deliveryId, null, StatusCodes.Status400BadRequest, error);
            return Problems.BadRequest(error!);
        }

        WebhookOutcome outcome;
        try
        {
            outcome = await processor.ProcessAsync(deliveryId, bodySha256, parsed, cancellationToken);
        }
        catch (ConcurrentChangeException ex)
        {
            metrics.WebhookRefused("conflict");
            return Problems.Conflict(ex.Message + "; retry the delivery");
        }

        metrics.WebhookAnswered(parsed.Event, outcome.StatusCode);
        if (outcome.ReplayedOtherBody)
        {
            // The answer is about another body: a sender that checks only the status would take it for this event's.
            request.HttpContext.Response.Headers[WebhookOutcome.ReplayHeader] = "other-body";
        }

        return outcome.ToResult();
    }

    /// <summary>
    /// The delivery's id (<see cref="DeliveryHeader"/>, else <see cref="DeliveryQueryParameter"/>, else
    /// <see cref="BodyDeliveryPrefix"/> and the body's hash when neither is given), or why the one given is not an id that
    /// a retry could repeat: given twice (read joined, "a,b" is an id that a retry sending either of them does not
    /// repeat), longer than 200 characters, or holding a control character (it is logged when replayed).
    /// </summary>
    private static (string? DeliveryId, string? Refusal) DeliveryId(HttpRequest request, string bodySha256)
    {
        var given = request.Headers[DeliveryHeader] is { Count: > 0 } header ? header : request.Query[DeliveryQueryParameter];
        if (given.Count == 0 || given is [""])
        {
            // Given empty is not given: curl drops a header given empty (-H "X-RolloutGate-Delivery: $ID", ID unset).
            return (BodyDeliveryPrefix + bodySha256, null);
        }

        if (given.Count > 1)
        {
            return (null, $"the {DeliveryHeader} header (or ?{DeliveryQueryParameter}=) is given {given.Count} times; a delivery has one id");
        }

        var deliveryId = given.ToString();
        return deliveryId.Length > 200 || deliveryId.Any(LogText.Breaks)
            ? (null, $"the {DeliveryHeader} header (or ?{DeliveryQueryParameter}=) must be at most 200 characters, with no control character such as NUL or a line break, the same on every retry of one delivery (or leave it out: the body's SHA-256 then stands in for it)")
            : (deliveryId, null);
    }

    /// <summary>The answer to a body <see cref="ReadBodyAsync"/> refused for its size.</summary>
    internal static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult BodyTooLarge() => Problems.PayloadTooLarge($"the body is larger than {MaxBodyBytes} bytes");

    internal static async Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken) =>
        (await BoundedBody.ReadAsync(request.Body, request.ContentLength, MaxBodyBytes, cancellationToken))?.ToArray();

    private static async Task<IResult> ListAsync(
        HttpRequest request, RolloutGateDbContext db, RunbookCatalog runbooks, TimeProvider time, string? service, string? environment, string? state,
        int? limit, string? after, CancellationToken cancellationToken)
    {
        if (state is not null && !DeploymentState.IsKnown(state))
        {
            return Problems.BadRequest($"state '{state}' is not one of {string.Join(", ", DeploymentState.All)}");
        }

        var take = limit ?? 100;
        if (take is < 1 or > 1000)
        {
            return Problems.BadRequest("limit must be between 1 and 1000");
        }

        var cursor = (DateTimeOffset.MinValue, "");
        if (after is not null && !DeploymentCursor.TryParse(after, out cursor))
        {
            return Problems.BadRequest($"after '{after}' is not a cursor: pass the next of the previous page as it was given");
        }

        var query = db.Deployments.AsNoTracking().Include(d => d.RunbookVersion).Include(d => d.Decisions).AsSplitQuery();
        if (service is not null)
        {
            query = query.Where(d => d.Service == service);
        }

        if (environment is not null)
        {
            query = query.Where(d => d.Environment == environment);
        }

        if (state is not null)
        {
            query = query.Where(d => d.State == state);
        }

        if (after is not null)
        {
            query = query.After(cursor);
        }

        var rows = await query.NewestFirst().Take(take + 1).ToListAsync(cancellationToken);
        var next = rows.Count > take ? DeploymentCursor.Of(rows[take - 1]) : null;
        rows = rows.Take(take).ToList();
        var evaluations = await EvaluationStore.LatestViewsAsync(db, [.. rows.Select(row => row.Id)], cancellationToken);
        var rollbacks = await RollbackActionView.ForAsync(db, [.. rows.Select(row => row.Id)], cancellationToken);
        var now = time.GetUtcNow();
        var views = rows.Select(row => DeploymentView.From(
            row, evaluations.GetValueOrDefault(row.Id), rollbacks.GetValueOrDefault(row.Id), Interval(runbooks, row), now)).ToList();
        if (Csv.IsRequested(request))
        {
            // As the audit events': CSV has no room for the cursor, so the next page is named in a Link header.
            if (next is not null)
            {
                request.HttpContext.Response.Headers.Link = AuditEndpoints.NextPageLink(request, next);
            }

            return Csv.Result(
                ["deploymentId", "service", "environment", "version", "previousVersion", "state", "runbook", "runbookVersion", "runbookSha256", "createdAt", "watchUntil"],
                views.Select(v => (IReadOnlyList<object?>)[v.DeploymentId, v.Service, v.Environment, v.Version, v.PreviousVersion, v.State,
                    v.Runbook.Name, v.Runbook.Version, v.Runbook.Sha256, v.CreatedAt, v.Watch?.Until]));
        }

        return TypedResults.Ok(new DeploymentPage(views, next));
    }

    private static async Task<IResult> GetAsync(string id, RolloutGateDbContext db, RunbookCatalog runbooks, TimeProvider time, CancellationToken cancellationToken)
    {
        var row = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion).Include(d => d.Decisions)
            .SingleOrDefaultAsync(d => d.Id == id, cancellationToken);
        if (row is null)
        {
            return Problems.NotFound($"deployment '{id}' is unknown");
        }

        var rollback = (await RollbackActionView.ForAsync(db, [id], cancellationToken)).GetValueOrDefault(id);
        var latest = await EvaluationStore.LatestViewAsync(db, id, cancellationToken);
        return TypedResults.Ok(DeploymentView.From(row, latest, rollback, Interval(runbooks, row), time.GetUtcNow()));
    }

    /// <summary>
    /// The watch interval of the runbook version that governs <paramref name="row"/>, for a deployment whose watch started;
    /// null if that version no longer parses (the watch cannot run it either, and says so in the log), so the view still answers.
    /// </summary>
    private static TimeSpan? Interval(RunbookCatalog runbooks, DeploymentRow row) =>
        row.WatchStartedAt is null ? null : runbooks.ReadableVersionOf(row)?.Watch.Interval;

    private static async Task<IResult> DecideAsync(string id, string kind, HttpRequest request, DeploymentDecisions decide, CancellationToken cancellationToken)
    {
        // Read as JSON whatever the content type says, as the webhook is: curl -d sends a form type.
        var bytes = await ReadBodyAsync(request, cancellationToken);
        if (bytes is null)
        {
            return BodyTooLarge();
        }

        if (bytes.Length == 0)
        {
            return Problems.BadRequest("the body must be JSON with actor and reason, e.g. {\"actor\":\"alice\",\"reason\":\"...\"}");
        }

        OperatorRequest? body;
        try
        {
            body = System.Text.Json.JsonSerializer.Deserialize<OperatorRequest>(WebhookRequestParser.WithoutByteOrderMark(bytes), OperatorJson);
        }
        catch (System.Text.Json.JsonException ex)
        {
            return Problems.BadRequest($"the body is not valid JSON{WebhookRequestParser.WhereAndWhy(ex)}");
        }

        if (string.IsNullOrWhiteSpace(body?.Actor))
        {
            return Problems.BadRequest("\"actor\" is required: who is deciding");
        }

        return await decide.DecideAsync(id, kind, body.Actor, body.Reason, "http", cancellationToken);
    }
}
