using System.Text.Json;
using System.Text.Json.Serialization;
using RolloutGate.Api;
using RolloutGate.Infrastructure;

namespace RolloutGate.Webhooks;

/// <summary>The CD webhook body of CONTRACT section 4.</summary>
public sealed record WebhookRequest(
    string Event,
    string DeploymentId,
    string Service,
    string Environment,
    string? Version,
    string? PreviousVersion,
    string? Initiator,
    string? Commit,
    string? PipelineUrl,
    [property: JsonConverter(typeof(InstantConverter))] DateTimeOffset? At);

/// <summary>
/// An ISO 8601 time that names an instant: with <c>Z</c> or an offset. The serializer reads a time without one on the
/// server's clock, so "2026-11-21T10:00:00" would be another instant on a server in another zone, and hours off a
/// pipeline's meaning (a deploy read as an hour later puts the first hour after it into the baseline).
/// </summary>
internal sealed partial class InstantConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String || !reader.TryGetDateTimeOffset(out var value))
        {
            // The serializer's own message ("could not be converted to"), which the parser turns into what to send.
            throw new JsonException();
        }

        if (!Offset().IsMatch(reader.GetString()!))
        {
            throw new JsonException("a time without Z or an offset such as +01:00 names no instant; send \"2026-11-21T10:00:00Z\" for 10:00 UTC");
        }

        return value;
    }

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) => writer.WriteStringValue(value);

    [System.Text.RegularExpressions.GeneratedRegex(@"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$")]
    private static partial System.Text.RegularExpressions.Regex Offset();
}

public static class WebhookEvents
{
    public const string PreDeploy = "predeploy";
    public const string Deployed = "deployed";
    public const string RolledBack = "rolledback";
    public const string Cancelled = "cancelled";

    public static readonly IReadOnlyList<string> All = [PreDeploy, Deployed, RolledBack, Cancelled];
}

/// <summary>Turns a raw body into a <see cref="WebhookRequest"/> or a reason a pipeline author can act on.</summary>
public static class WebhookRequestParser
{
    public const int MaxFieldLength = 256;

    public const int MaxUrlLength = 2048;

    /// <summary>
    /// How far <c>at</c> may be from now. Generous for replays and clock trouble; what lies beyond is a mistake, and
    /// the watch's times (at plus its duration, minus its baseline) must stay representable.
    /// </summary>
    public static readonly TimeSpan MaxAtDistance = TimeSpan.FromDays(3650);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = JsonNumberHandling.Strict,
        AllowTrailingCommas = false,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        // A field given twice means whatever the reader makes of it (the last one here, the first one in many a proxy or
        // audit tool): the signed body must mean one thing.
        AllowDuplicateProperties = false,
    };

    /// <summary>
    /// The webhook in <paramref name="body"/>, or why not. <paramref name="clockSkew"/> is how far ahead of
    /// <paramref name="now"/> an <c>at</c> may be (the sender's clock may run a little ahead: the signature's timestamp
    /// tolerance); an event is sent when it happens, so an <c>at</c> later than that is refused.
    /// </summary>
    public static (WebhookRequest? Request, string? Error) Parse(ReadOnlySpan<byte> body, DateTimeOffset now, TimeSpan clockSkew)
    {
        if (body.IsEmpty)
        {
            return (null, "the body is empty; expected a JSON object with event, deploymentId, service and environment");
        }

        body = WithoutByteOrderMark(body);
        WebhookRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<WebhookRequest>(body, Json);
        }
        catch (JsonException ex)
        {
            return (null, $"the body is not valid webhook JSON{WhereAndWhy(ex)}");
        }

        if (request is null)
        {
            return (null, "the body must be a JSON object");
        }

        var missing = new[] { ("event", request.Event), ("deploymentId", request.DeploymentId), ("service", request.Service), ("environment", request.Environment) }
            .Where(field => string.IsNullOrWhiteSpace(field.Item2))
            .Select(field => field.Item1)
            .ToList();
        if (missing.Count > 0)
        {
            return (null, $"missing required field{(missing.Count > 1 ? "s" : "")}: {string.Join(", ", missing)}");
        }

        if (!WebhookEvents.All.Contains(request.Event, StringComparer.Ordinal))
        {
            return (null, $"event '{request.Event}' is not one of {string.Join(", ", WebhookEvents.All)}");
        }

        var texts = new[]
        {
            ("event", request.Event), ("deploymentId", request.DeploymentId), ("service", request.Service), ("environment", request.Environment),
            ("version", request.Version), ("previousVersion", request.PreviousVersion), ("initiator", request.Initiator), ("commit", request.Commit),
            ("pipelineUrl", request.PipelineUrl),
        };
        static int Limit(string field) => field == "pipelineUrl" ? MaxUrlLength : MaxFieldLength;
        if (texts.FirstOrDefault(field => field.Item2 is { } text && text.Length > Limit(field.Item1)) is { Item1: { } tooLong, Item2: { } value })
        {
            return (null, $"{tooLong} is {value.Length} characters long; at most {Limit(tooLong)} are accepted");
        }

        if (texts.FirstOrDefault(field => InputExceptionHandler.HoldsNul(field.Item2)) is { Item1: { } withNul })
        {
            return (null, $"{withNul} contains a NUL character (\\u0000)");
        }

        if (request.DeploymentId.Contains('/', StringComparison.Ordinal))
        {
            // It is a segment of the deployment's URL (/api/v1/deployments/{id}), where an escaped slash is not read back.
            return (null, "deploymentId must not contain '/'; it names the deployment in URLs such as /api/v1/deployments/{deploymentId}");
        }

        if (request.DeploymentId.Any(LogText.Breaks))
        {
            // It names the deployment in logs, Slack commands and CSV too, where a line break would start a line of its own.
            return (null, "deploymentId must not contain a control character (a line break, a tab); it names the deployment in URLs, logs and Slack commands");
        }

        if (request.DeploymentId is "." or "..")
        {
            // A URL's dot segments are resolved away before routing: /api/v1/deployments/.. could never name it.
            return (null, "deploymentId must not be '.' or '..'; it names the deployment in URLs such as /api/v1/deployments/{deploymentId}");
        }

        if (request.At is { } at && (at < now - MaxAtDistance || at > now + MaxAtDistance))
        {
            return (null, $"at ({at:O}) is more than {MaxAtDistance.TotalDays:0} days from now; send the time of the event, or leave at out for now");
        }

        // A deployed event a month ahead started a watch of a month ahead, blind till then and holding the service's
        // next change; a predeploy ahead judged a freeze window that is not yet in force.
        if (request.At is { } ahead && ahead > now + clockSkew)
        {
            return (null, $"at ({ahead:O}) is {Ahead(ahead - now)} ahead of this server's clock; an event is sent when it happens: send its time, or leave at out for now");
        }

        // The same instant in UTC: PostgreSQL's timestamptz takes no other offset, and "2026-11-21T11:00:00+01:00" made
        // the deployed event a 500.
        return (request with { At = request.At?.ToUniversalTime() }, null);
    }

    private static string Ahead(TimeSpan ahead) =>
        ahead >= TimeSpan.FromDays(2) ? $"{(int)ahead.TotalDays} days"
        : ahead >= TimeSpan.FromHours(2) ? $"{(int)ahead.TotalHours} hours"
        : $"{(int)Math.Ceiling(ahead.TotalMinutes)} minutes";

    /// <summary>A byte order mark, as some clients (PowerShell's, say) put before UTF-8 text, is not part of the JSON.</summary>
    internal static ReadOnlySpan<byte> WithoutByteOrderMark(ReadOnlySpan<byte> body) => body.StartsWith("\uFEFF"u8) ? body[3..] : body;

    /// <summary>" at $.field: what is wrong there", for a sentence about a JSON body; also the operator endpoints'.</summary>
    internal static string WhereAndWhy(JsonException ex) => (ex.Path is { Length: > 1 } path ? $" at {path}" : "") + ": " + Readable(ex);

    /// <summary>
    /// The serializer's first sentence, or, for a value of the wrong type (whose message names a .NET type), what the
    /// sender has to send there instead.
    /// </summary>
    private static string Readable(JsonException ex)
    {
        if (ex.Message.StartsWith("Duplicate", StringComparison.Ordinal))
        {
            // The serializer's words name the .NET type; the path before this already names the field.
            return "the field is given more than once";
        }

        var end = ex.Message.IndexOf(". ", StringComparison.Ordinal);
        var first = end > 0 ? ex.Message[..(end + 1)] : ex.Message;
        if (!first.Contains("could not be converted to", StringComparison.Ordinal))
        {
            return first;
        }

        return ex.Path switch
        {
            null or "$" => "expected a JSON object",
            "$.at" => "expected an ISO 8601 time with an offset, such as \"2026-11-21T10:00:00Z\"",
            _ => "expected a string",
        };
    }
}
