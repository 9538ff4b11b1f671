using System.Globalization;
using System.Text.Json;
using RolloutGate.Api;
using RolloutGate.Audit;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Demo;

/// <summary>
/// What the demo workload does wrong: <paramref name="Latency"/> multiplies every request's duration (1: as healthy),
/// <paramref name="ErrorRate"/> is the share of requests that fail with 503 (healthy: <see cref="DemoWorkload.ErrorShare"/>).
/// </summary>
public sealed record DemoFault(double Latency, double ErrorRate)
{
    public const double MinLatency = 0.1;
    public const double MaxLatency = 100;

    public static DemoFault Healthy { get; } = new(1, DemoWorkload.ErrorShare);

    public bool IsHealthy => this == Healthy;

    /// <summary>
    /// Reads a <c>POST /demo/faults</c> body: a JSON object with <c>latency</c> and <c>errorRate</c>, each optional (a
    /// missing one is as healthy, so <c>{}</c> restores health). Returns the fault, or why the body is refused.
    /// </summary>
    public static (DemoFault? Fault, string? Error) Parse(byte[] body)
    {
        const string Shape = "send a JSON object such as {\"latency\": 2.0, \"errorRate\": 0.05} (latency multiplier, share of requests failing); {} restores health";
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException ex)
        {
            return (null, $"the body is not valid JSON ({ex.Message}): {Shape}");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, $"the body is a JSON {document.RootElement.ValueKind.ToString().ToLowerInvariant()}, not an object: {Shape}");
            }

            double? latency = null;
            double? errorRate = null;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name is not ("latency" or "errorRate"))
                {
                    return (null, $"unknown field \"{property.Name}\": only \"latency\" and \"errorRate\" are understood");
                }

                if ((property.Name == "latency" ? latency : errorRate) is not null)
                {
                    return (null, $"\"{property.Name}\" is given twice");
                }

                if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetDouble(out var value) || !double.IsFinite(value))
                {
                    return (null, $"\"{property.Name}\" must be a finite number, not {property.Value.GetRawText()}");
                }

                if (property.Name == "latency")
                {
                    latency = value;
                }
                else
                {
                    errorRate = value;
                }
            }

            if (latency is < MinLatency or > MaxLatency)
            {
                return (null, string.Create(CultureInfo.InvariantCulture,
                    $"\"latency\" {latency} is out of range: a multiplier of request durations from {MinLatency} to {MaxLatency} (1 is healthy)"));
            }

            if (errorRate is < 0 or > 1)
            {
                return (null, string.Create(CultureInfo.InvariantCulture,
                    $"\"errorRate\" {errorRate} is out of range: the share of requests failing, from 0 to 1 (healthy: {DemoWorkload.ErrorShare})"));
            }

            return (new DemoFault(latency ?? Healthy.Latency, errorRate ?? Healthy.ErrorRate), null);
        }
    }
}

/// <summary>The fault in force, as every <c>/demo/faults</c> answer shows it.</summary>
public sealed record DemoFaultView(double Latency, double ErrorRate, bool Healthy, DateTimeOffset? Since)
{
    public static DemoFaultView Of(DemoWorkload workload)
    {
        var (fault, since) = workload.Fault;
        return new DemoFaultView(fault.Latency, fault.ErrorRate, fault.IsHealthy, since);
    }
}

/// <summary>
/// The demo workload's fault switch, mapped only in demo mode: <c>GET /demo/faults</c> (reader token) shows the fault in
/// force; <c>POST /demo/faults</c> with a <see cref="DemoFault"/> body and <c>DELETE /demo/faults</c> (operator token)
/// change it from now on. Each change is logged and audited (<see cref="AuditEventTypes.DemoFault"/>) before it takes
/// effect, since it changes what the watch of the demo's service sees.
/// </summary>
public static partial class DemoFaultEndpoints
{
    public const string Path = "/demo/faults";

    /// <summary>One change at a time, so the audit trail's order is the order the changes took effect.</summary>
    private static readonly SemaphoreSlim Changing = new(1, 1);

    public static IEndpointRouteBuilder MapDemoFaults(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup(Path).ExcludeFromDescription();
        group.MapGet("/", (DemoWorkload workload) => TypedResults.Ok(DemoFaultView.Of(workload))).RequireApiToken(ApiRole.Reader);
        group.MapPost("/", SetAsync).RequireApiToken(ApiRole.Operator).DisableAntiforgery();
        group.MapDelete("/", (DemoWorkload workload, RolloutGateDbContext db, AuditTrail audit, ILoggerFactory loggers, CancellationToken cancellationToken) =>
            ChangeAsync(DemoFault.Healthy, workload, db, audit, loggers, cancellationToken)).RequireApiToken(ApiRole.Operator);
        return app;
    }

    private static async Task<IResult> SetAsync(
        HttpRequest request, DemoWorkload workload, RolloutGateDbContext db, AuditTrail audit, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        // Any content type, as for the webhook: curl -d sends a form type.
        var body = await DeploymentEndpoints.ReadBodyAsync(request, cancellationToken);
        if (body is null)
        {
            return DeploymentEndpoints.BodyTooLarge();
        }

        var (fault, error) = DemoFault.Parse(body);
        return fault is null ? Problems.BadRequest(error!) : await ChangeAsync(fault, workload, db, audit, loggers, cancellationToken);
    }

    private static async Task<IResult> ChangeAsync(
        DemoFault fault, DemoWorkload workload, RolloutGateDbContext db, AuditTrail audit, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        await Changing.WaitAsync(cancellationToken);
        try
        {
            var (previous, _) = workload.Fault;
            // On record first: a change the database cannot record (503) does not take effect.
            await using (var transaction = await db.Database.BeginTransactionAsync(cancellationToken))
            {
                await audit.AppendAsync(db, [new AuditEntry(AuditEventTypes.DemoFault, null, DemoWorkload.Workload, null, new
                {
                    fault.Latency,
                    fault.ErrorRate,
                    healthy = fault.IsHealthy,
                    previous = new { previous.Latency, previous.ErrorRate },
                })], cancellationToken);
                await transaction.CommitAsync(cancellationToken);
            }

            workload.SetFault(fault);
            LogChanged(loggers.CreateLogger(typeof(DemoFaultEndpoints).FullName!), fault.Latency, fault.ErrorRate, previous.Latency, previous.ErrorRate);
            return TypedResults.Ok(DemoFaultView.Of(workload));
        }
        finally
        {
            Changing.Release();
        }
    }

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Demo fault: the demo workload now runs at {Latency}x latency with {ErrorRate} of requests failing (was {PreviousLatency}x, {PreviousErrorRate})")]
    private static partial void LogChanged(ILogger logger, double latency, double errorRate, double previousLatency, double previousErrorRate);
}
