using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using RolloutGate.Api;
using RolloutGate.Deployments;

namespace RolloutGate.Slack;

/// <summary>
/// Requests from Slack (CONTRACT section 6): button presses and the /rolloutgate slash command. Both verify Slack's
/// signature over the raw body before anything is parsed, and answer at once: the work is one database transaction.
/// </summary>
public static class SlackEndpoints
{
    private static readonly string[] Decisions = [DecisionKinds.Stop, DecisionKinds.Rollback, DecisionKinds.Dismiss];

    /// <summary>The answer to a slash command that repeats one already received (<see cref="SlackActions.FirstTimeAsync"/>).</summary>
    public const string Repeated = "This request was received before; nothing changed.";

    public const string Usage =
        "Usage: `/rolloutgate status <deploymentId|service>`, `/rolloutgate stop|rollback|dismiss <deploymentId> [reason]`; "
        + "an id with spaces goes between double quotes: `/rolloutgate stop \"run 8812\"`";

    public static IEndpointRouteBuilder MapSlack(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/slack").WithTags("Slack").DisableAntiforgery();
        group.MapPost("/interactions", InteractionAsync);
        group.MapPost("/commands", CommandAsync);
        return app;
    }

    private static async Task<IResult> InteractionAsync(HttpRequest request, SlackRequestVerifier verifier, SlackActions actions, CancellationToken cancellationToken)
    {
        var (form, refused) = await ReadVerifiedFormAsync(request, verifier, cancellationToken);
        if (form is null)
        {
            return refused!;
        }

        Interaction? interaction;
        try
        {
            interaction = JsonSerializer.Deserialize<Interaction>(form.GetValueOrDefault("payload").ToString(), SlackApiClient.Json);
        }
        catch (JsonException)
        {
            return Problems.BadRequest("the payload form field is not JSON");
        }

        if (interaction is null)
        {
            return Problems.BadRequest("the payload form field is not a JSON object");
        }

        // Other interaction types are not RolloutGate's: nothing to do.
        if (interaction.Type != "block_actions")
        {
            return TypedResults.Ok();
        }

        var (press, malformed) = Read(interaction);
        if (press is null)
        {
            return Problems.BadRequest(malformed!);
        }

        // Slack shows nothing of this answer for block_actions; what the user should read goes out as an ephemeral message.
        var target = press.Channel is null ? null : new EphemeralTarget(press.Channel, press.UserId);
        try
        {
            if (press.Decisions.Count > 0 && !await actions.FirstTimeAsync(Signature(request), press.UserId,
                string.Join(", ", press.Decisions.Select(d => $"{d.Kind} {d.DeploymentId}")), cancellationToken))
            {
                return TypedResults.Ok();
            }

            foreach (var (kind, deploymentId) in press.Decisions)
            {
                await actions.DecideAsync(press.UserId, kind, deploymentId, reason: null, target, cancellationToken);
            }
        }
        catch (Exception ex) when (target is not null && DatabaseUnavailableHandler.Unavailable(ex) is not null)
        {
            // The private answer to a press goes through the outbox, which is in the database: without it the user would
            // see only Slack's bare failure mark. Told at once instead; the 503 and its log line follow as for any request.
            await actions.TellNowAsync(target, DatabaseUnavailableHandler.SlackAnswer, cancellationToken);
            throw;
        }

        return TypedResults.Ok();
    }

    /// <summary>
    /// The press in a block_actions payload, or why it cannot be acted on. Slack always sends the user who pressed and
    /// the actions, each with its action_id; RolloutGate's buttons carry the deployment id as their value. Every action
    /// is checked before any is carried out, so a malformed payload changes nothing.
    /// </summary>
    private static (Press? Press, string? Malformed) Read(Interaction interaction)
    {
        if (interaction.User?.Id is not { Length: > 0 } userId)
        {
            return (null, "the block_actions payload has no user.id");
        }

        if (TooLong(userId) is { } tooLong)
        {
            return (null, tooLong);
        }

        if (interaction.Actions is not { } actions)
        {
            return (null, "the block_actions payload has no actions");
        }

        var channel = interaction.Channel?.Id ?? interaction.Container?.ChannelId;
        var strings = new List<string?> { userId, channel };
        var decisions = new List<(string Kind, string DeploymentId)>();
        for (var i = 0; i < actions.Count; i++)
        {
            if (actions[i] is not { } action)
            {
                return (null, $"actions[{i}] is null");
            }

            if (action.ActionId is not { Length: > 0 } actionId)
            {
                return (null, $"actions[{i}] has no action_id");
            }

            // An action that is none of RolloutGate's three buttons is left alone.
            if (!Decisions.Contains(actionId))
            {
                continue;
            }

            if (action.Value is not { Length: > 0 } deploymentId)
            {
                return (null, $"actions[{i}] ({actionId}) has no value; RolloutGate's buttons carry the deployment id there");
            }

            strings.Add(deploymentId);
            decisions.Add((actionId, deploymentId));
        }

        return strings.Any(InputExceptionHandler.HoldsNul)
            ? (null, "the payload holds a NUL character, which Slack never sends")
            : (new Press(userId, channel, decisions), null);
    }

    private static async Task<IResult> CommandAsync(HttpRequest request, SlackRequestVerifier verifier, SlackActions actions, CancellationToken cancellationToken)
    {
        var (form, refused) = await ReadVerifiedFormAsync(request, verifier, cancellationToken);
        if (form is null)
        {
            return refused!;
        }

        var userId = form.GetValueOrDefault("user_id").ToString();
        if (TooLong(userId) is { } tooLong)
        {
            return Problems.BadRequest(tooLong);
        }

        // The verb in any case; an id with spaces between quotes (SlashCommandText), and a quote left open said so. Text
        // whose first word is none of the four verbs is answered with the usage, quotes or not, as before.
        var text = SlashCommandText.Read(form.GetValueOrDefault("text").ToString()) switch
        {
            { Verb: var verb, Refusal: { } refusal } when verb == "status" || Decisions.Contains(verb) => refusal,
            { Verb: "status", Name: { } target, Rest: [] } => await actions.StatusAsync(target, cancellationToken),
            { Verb: var verb, Name: { } deploymentId, Rest: var because } when Decisions.Contains(verb) && userId.Length > 0 =>
                await actions.FirstTimeAsync(Signature(request), userId, $"/rolloutgate {verb} {SlashCommandText.Quote(deploymentId)}", cancellationToken)
                    ? await actions.DecideAsync(userId, verb, deploymentId, because.Count == 0 ? null : string.Join(' ', because), null, cancellationToken)
                    : Repeated,
            _ => Usage,
        };
        return TypedResults.Json(new EphemeralResponse("ephemeral", text), SlackApiClient.Json);
    }

    /// <summary>The verified request's signature, which names it (its timestamp and body) for <see cref="SlackActions.FirstTimeAsync"/>.</summary>
    private static string Signature(HttpRequest request) => request.Headers[SlackRequestVerifier.SignatureHeader].ToString();

    /// <summary>
    /// Why a user id cannot be acted on for its length, or null. Slack's are a dozen characters; whoever presses or types
    /// is audited as the event's actor, which is indexed, so a longer one is refused as a decision's actor is
    /// (<see cref="DeploymentDecisions.MaxActorLength"/>) rather than failing the audit in PostgreSQL.
    /// </summary>
    private static string? TooLong(string userId) =>
        userId.Length > DeploymentDecisions.MaxActorLength
            ? $"the user id is {userId.Length} characters long; at most {DeploymentDecisions.MaxActorLength} are accepted"
            : null;

    private static async Task<(Dictionary<string, Microsoft.Extensions.Primitives.StringValues>? Form, IResult? Refused)> ReadVerifiedFormAsync(
        HttpRequest request, SlackRequestVerifier verifier, CancellationToken cancellationToken)
    {
        var body = await DeploymentEndpoints.ReadBodyAsync(request, cancellationToken);
        if (body is null)
        {
            return (null, DeploymentEndpoints.BodyTooLarge());
        }

        if (verifier.Refusal(request, body) is { } refusal)
        {
            return (null, Problems.Unauthorized(refusal));
        }

        var form = QueryHelpers.ParseQuery(Encoding.UTF8.GetString(body));
        if (form.Values.Any(values => values.Any(InputExceptionHandler.HoldsNul)))
        {
            return (null, Problems.BadRequest("the form holds a NUL character, which Slack never sends"));
        }

        // A field given twice would be read as both values joined by a comma: two payload halves make one JSON object.
        if (form.FirstOrDefault(field => field.Value.Count > 1) is { Key: { } repeated })
        {
            return (null, Problems.BadRequest($"the form holds the field '{repeated}' more than once, which Slack never sends"));
        }

        return (form, null);
    }

    /// <summary>A slash command's answer: shown only to the user who typed it.</summary>
    public sealed record EphemeralResponse(string ResponseType, string Text);

    private sealed record Interaction(string? Type, SlackUser? User, SlackChannel? Channel, InteractionContainer? Container, IReadOnlyList<InteractionAction?>? Actions);

    /// <summary>A button press as RolloutGate acts on it: who pressed, where to answer them privately, what they decided.</summary>
    private sealed record Press(string UserId, string? Channel, IReadOnlyList<(string Kind, string DeploymentId)> Decisions);

    private sealed record SlackUser(string? Id);

    private sealed record SlackChannel(string? Id);

    private sealed record InteractionContainer(string? ChannelId);

    private sealed record InteractionAction(string? ActionId, string? Value);
}
