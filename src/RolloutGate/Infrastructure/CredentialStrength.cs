using Microsoft.Extensions.Options;

namespace RolloutGate.Infrastructure;

/// <summary>
/// Warns at start-up, once per setting, about a webhook secret or a bearer token shorter than
/// <see cref="MinimumLength"/> characters. A signed webhook captured anywhere on its way (a CI log, a proxy) lets anyone
/// try secrets against its HMAC-SHA256 offline, as fast as their hardware allows, and a short token can be guessed; a
/// random secret of 32 or more characters (16 bytes or more) is out of reach. The setting is named, never its value or
/// length. A warning, not a refusal: a short secret still works, as CONTRACT section 2 configures it.
/// </summary>
public sealed partial class CredentialStrength(IOptions<RolloutGateOptions> options, ILogger<CredentialStrength> logger) : IHostedService
{
    public const int MinimumLength = 32;

    /// <summary>The settings (<c>RolloutGate:Webhook:Secret</c>, <c>RolloutGate:Api:ReaderTokens:0</c>, …) that hold a short credential.</summary>
    public static IEnumerable<string> ShortCredentials(RolloutGateOptions options)
    {
        const string section = RolloutGateOptions.SectionName;
        var credentials = new[] { ($"{section}:Webhook:Secret", options.Webhook.Secret) }
            .Concat(Numbered($"{section}:Webhook:PreviousSecrets", options.Webhook.PreviousSecrets))
            .Concat(Numbered($"{section}:Webhook:Tokens", options.Webhook.Tokens))
            .Concat(Numbered($"{section}:Api:ReaderTokens", options.Api.ReaderTokens))
            .Concat(Numbered($"{section}:Api:OperatorTokens", options.Api.OperatorTokens));
        return credentials.Where(credential => credential.Item2 is { Length: > 0 and < MinimumLength }).Select(credential => credential.Item1);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var setting in ShortCredentials(options.Value))
        {
            LogShort(logger, setting, MinimumLength);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static IEnumerable<(string, string?)> Numbered(string key, IEnumerable<string> values) =>
        values.Select((value, index) => ($"{key}:{index}", (string?)value));

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Setting} is shorter than {Minimum} characters: a signed request seen anywhere lets anyone try secrets against it offline, and a short token can be guessed. Use a random value of at least {Minimum} characters, e.g. `openssl rand -hex 32`")]
    private static partial void LogShort(ILogger logger, string setting, int minimum);
}
