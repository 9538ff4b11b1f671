namespace RolloutGate.Slack;

// Block Kit, just the parts RolloutGate sends. Serialised with SlackApiClient.Json (snake_case).

public sealed record SlackText(string Type, string Text)
{
    public static SlackText Markdown(string text) => new("mrkdwn", text);

    public static SlackText Plain(string text) => new("plain_text", text);
}

public sealed record SectionBlock(SlackText Text)
{
    public string Type => "section";
}

public sealed record ContextBlock(IReadOnlyList<SlackText> Elements)
{
    public string Type => "context";
}

public sealed record ActionsBlock(string BlockId, IReadOnlyList<ButtonElement> Elements)
{
    public string Type => "actions";
}

/// <summary>A button; Slack sends <see cref="ActionId"/> and <see cref="Value"/> back in a block_actions payload.</summary>
public sealed record ButtonElement(string ActionId, SlackText Text, string Value, string? Style = null)
{
    public string Type => "button";
}
