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

    public const string Usage =
        "Usage: `/rolloutgate status <deploymentId|service>`, `/rolloutgate stop|rollback|dismiss <deploymentId> [reason]`";

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

        // Slack shows nothing of this answer for block_actions; what the user should read goes out as an ephemeral message.
        if (interaction is not { Type: "block_actions", User.Id: { Length: > 0 } userId })
        {
            return TypedResults.Ok();
        }

        var channel = interaction.Channel?.Id ?? interaction.Container?.ChannelId;
        foreach (var action in interaction.Actions ?? [])
        {
            if (Decisions.Contains(action.ActionId) && action.Value is { Length: > 0 } deploymentId)
            {
                var target = channel is null ? null : new EphemeralTarget(channel, userId);
                await actions.DecideAsync(userId, action.ActionId!, deploymentId, reason: null, target, cancellationToken);
            }
        }

        return TypedResults.Ok();
    }

    private static async Task<IResult> CommandAsync(HttpRequest request, SlackRequestVerifier verifier, SlackActions actions, CancellationToken cancellationToken)
    {
        var (form, refused) = await ReadVerifiedFormAsync(request, verifier, cancellationToken);
        if (form is null)
        {
            return refused!;
        }

        var userId = form.GetValueOrDefault("user_id").ToString();
        var words = form.GetValueOrDefault("text").ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var text = words switch
        {
            ["status", var target] => await actions.StatusAsync(target, cancellationToken),
            [var verb, var deploymentId, .. var because] when Decisions.Contains(verb) && userId.Length > 0 =>
                await actions.DecideAsync(userId, verb, deploymentId, because.Length == 0 ? null : string.Join(' ', because), null, cancellationToken),
            _ => Usage,
        };
        return TypedResults.Json(new EphemeralResponse("ephemeral", text), SlackApiClient.Json);
    }

    private static async Task<(Dictionary<string, Microsoft.Extensions.Primitives.StringValues>? Form, IResult? Refused)> ReadVerifiedFormAsync(
        HttpRequest request, SlackRequestVerifier verifier, CancellationToken cancellationToken)
    {
        var body = await DeploymentEndpoints.ReadBodyAsync(request, cancellationToken);
        if (body is null)
        {
            return (null, Problems.PayloadTooLarge($"the body is larger than {DeploymentEndpoints.MaxBodyBytes} bytes"));
        }

        if (verifier.Refusal(request, body) is { } refusal)
        {
            return (null, Problems.Unauthorized(refusal));
        }

        return (QueryHelpers.ParseQuery(Encoding.UTF8.GetString(body)), null);
    }

    /// <summary>A slash command's answer: shown only to the user who typed it.</summary>
    public sealed record EphemeralResponse(string ResponseType, string Text);

    private sealed record Interaction(string? Type, SlackUser? User, SlackChannel? Channel, InteractionContainer? Container, IReadOnlyList<InteractionAction>? Actions);

    private sealed record SlackUser(string? Id);

    private sealed record SlackChannel(string? Id);

    private sealed record InteractionContainer(string? ChannelId);

    private sealed record InteractionAction(string? ActionId, string? Value);
}
