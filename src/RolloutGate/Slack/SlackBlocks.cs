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

/// <summary>
/// Block Kit's limits that RolloutGate's messages can reach. Slack refuses a message past them as a whole
/// (<c>invalid_blocks</c>, <c>msg_blocks_too_long</c>): nothing is posted and the decision channel stays silent. So
/// evidence is shortened to fit (<see cref="SlackMessages.Sections"/>) instead; the deployment's page has all of it.
/// </summary>
public static class BlockKitLimits
{
    /// <summary>A section's text: https://docs.slack.dev/reference/block-kit/blocks/section-block ("Maximum length ... 3000 characters").</summary>
    public const int SectionText = 3000;

    /// <summary>Blocks in one message: https://docs.slack.dev/reference/block-kit/blocks ("up to 50 blocks in each message").</summary>
    public const int Blocks = 50;

    /// <summary>
    /// All section text of one message together. Not documented: Slack answers <c>msg_blocks_too_long</c> once the blocks
    /// of a message hold about 13,000 characters (https://github.com/slackapi/bolt-js/issues/2509), well below 50 full
    /// sections; this stays below that.
    /// </summary>
    public const int MessageText = 12_000;

    /// <summary>
    /// A message's <c>text</c>: all of a message without blocks, the notification of one with them. Slack cuts a text past
    /// 40,000 characters wherever it falls (an escape or a link too) and may break a long one into several messages;
    /// it asks to keep messages under 4,000 (https://api.slack.com/changelog/2018-04-truncating-really-long-messages).
    /// </summary>
    public const int Text = 4_000;
}
