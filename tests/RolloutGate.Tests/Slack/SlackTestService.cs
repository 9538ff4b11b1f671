using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Decisions;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Slack;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Slack;

/// <summary>The real service wired to a fake Slack, with a signing secret, and quick outbox retries.</summary>
public sealed class SlackTestService : IAsyncDisposable
{
    public const string SigningSecret = "test-slack-signing-secret";
    public const string Owner = "U024BE7LH";
    public const string Approver = "U0G9QF9C6";
    public const string Stranger = "U0STRANGER";

    /// <summary>
    /// How long <see cref="EventuallyAsync"/> and <see cref="AllDeliveredAsync"/> wait unless told: for what the service's
    /// loops do on their own (they poll every second or two), which on a loaded machine, beside the suite's other tests,
    /// may take many times as long as on an idle one. A wait ends as soon as its condition holds.
    /// </summary>
    public const int PatienceSeconds = 60;

    private SlackTestService(FakeSlack slack, TestService service)
    {
        Slack = slack;
        Service = service;
    }

    public FakeSlack Slack { get; }

    public TestService Service { get; }

    /// <param name="dispatcherStoppedAtOnce">
    /// The test stops the hosted outbox dispatcher right after the start (<see cref="StopDispatcherAsync"/>), to dispatch
    /// by hand. .NET 10 starts a BackgroundService's ExecuteAsync with Task.Run on its stopping token: stopped before the
    /// thread pool ran it, its task is cancelled, which the host takes for a fault of the service and, by default, stops
    /// itself for (the service under test answered 500 from then on). Such a test's host lets that one pass.
    /// </param>
    public static async Task<SlackTestService> StartAsync(
        bool withBotToken = true, string? runbook = null, string? signingSecret = SigningSecret, IDictionary<string, string?>? moreSettings = null,
        bool dispatcherStoppedAtOnce = false, Action<IServiceCollection>? services = null)
    {
        var slack = await FakeSlack.StartAsync();
        var settings = new Dictionary<string, string?>
        {
            ["RolloutGate:Slack:ApiBaseUrl"] = slack.ApiBaseUrl,
            ["RolloutGate:Slack:BotToken"] = withBotToken ? FakeSlack.BotToken : "",
            ["RolloutGate:Slack:SigningSecret"] = signingSecret,
            ["RolloutGate:Slack:DispatchInterval"] = "00:00:00.100",
            ["RolloutGate:Slack:RetryBaseDelay"] = "00:00:00.200",
            ["RolloutGate:Slack:RetryMaxDelay"] = "00:00:01",
            ["RolloutGate:PublicUrl"] = "https://rolloutgate.example",
        };
        foreach (var (key, value) in moreSettings ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        var service = await TestService.StartAsync([("checkout.yaml", runbook ?? TestRunbooks.Minimal())], settings, collection =>
        {
            if (dispatcherStoppedAtOnce)
            {
                collection.Configure<HostOptions>(options => options.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.Ignore);
            }

            services?.Invoke(collection);
        });
        return new SlackTestService(slack, service);
    }

    /// <summary>Stops the hosted outbox dispatcher (start with <c>dispatcherStoppedAtOnce</c> when it is right after the start) and returns it.</summary>
    public async Task<SlackOutboxDispatcher> StopDispatcherAsync()
    {
        var dispatcher = Service.Host.Services.GetRequiredService<SlackOutboxDispatcher>();
        await dispatcher.StopAsync(CancellationToken.None);
        return dispatcher;
    }

    /// <summary>predeploy then deployed: the deployment is being watched.</summary>
    public async Task WatchAsync(string deploymentId)
    {
        (await Service.Webhooks.SendEventAsync("predeploy", deploymentId)).EnsureSuccessStatusCode();
        (await Service.Webhooks.SendEventAsync("deployed", deploymentId)).EnsureSuccessStatusCode();
    }

    /// <summary>
    /// Copies of the watched deployment <paramref name="deploymentId"/>, <paramref name="prefix"/>-<paramref name="from"/> to
    /// <paramref name="prefix"/>-<paramref name="to"/>: many watches at once, without a webhook each.
    /// </summary>
    public Task CopyWatchedAsync(string deploymentId, string prefix, int from, int to) =>
        Service.Database.ExecuteAsync($"""
            INSERT INTO deployments (id, service, environment, version, initiator, state, runbook_version_id, created_at, updated_at,
                                     deployed_at, watch_started_at, watch_until, baseline_from, baseline_to)
            SELECT '{prefix}-' || i, service, environment, version, initiator, state, runbook_version_id, created_at, updated_at,
                   deployed_at, watch_started_at, watch_until, baseline_from, baseline_to
            FROM deployments, generate_series({from}, {to}) AS i WHERE id = '{deploymentId}'
            """);

    /// <summary>What the watch will do: move a watched deployment to regressed (allowed in tests, see the brief).</summary>
    public Task RegressAsync(string deploymentId) =>
        Service.Database.ExecuteAsync($"UPDATE deployments SET state = 'regressed' WHERE id = '{deploymentId}'");

    /// <summary>What the watch does on a regression: state change, verdict event and the decision policy, in one transaction.</summary>
    public Task RegressThroughWatchAsync(string deploymentId, params MetricEvidence[] evidence) =>
        RegressThroughWatchAsync([deploymentId], evidence);

    /// <summary>
    /// What a sweep does when the deployments regress at the same t: their state changes and verdict events in one append,
    /// then the decision policy for them all, in one transaction. <paramref name="deciding"/>, when given, runs the
    /// decision policy's part (to count its statements, say).
    /// </summary>
    public async Task RegressThroughWatchAsync(IReadOnlyList<string> deploymentIds, IReadOnlyList<MetricEvidence> evidence,
        Func<RolloutGateDbContext, Func<Task>, Task>? deciding = null)
    {
        await using var scope = Service.Host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        await using var transaction = await db.Database.BeginTransactionAsync();
        var deployments = await db.Deployments.Include(d => d.RunbookVersion).Where(d => deploymentIds.Contains(d.Id)).ToDictionaryAsync(d => d.Id);
        var now = DateTimeOffset.UtcNow;
        // As the watch audits a regression: one verdict change per metric, all at the same evaluation time.
        var at = new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero);
        var entries = new List<AuditEntry>();
        foreach (var deployment in deploymentIds.Select(id => deployments[id]))
        {
            var change = WebhookProcessor.ChangeState(deployment, DeploymentTrigger.Regressed, DecisionPolicy.AutomaticActor, now);
            entries.AddRange(evidence.Select(e => new AuditEntry(AuditEventTypes.Evaluation, deployment.Id, deployment.Service, DecisionPolicy.AutomaticActor, new
            {
                metric = e.Metric, at, from = "healthy", verdict = e.Verdict, value = e.Value, baseline = e.Baseline, threshold = e.Threshold,
                explanation = e.Explanation, shown = e.Shown,
            })));
            entries.Add(change);
        }

        await db.SaveChangesAsync();
        await scope.ServiceProvider.GetRequiredService<AuditTrail>().AppendAsync(db, entries, CancellationToken.None);
        var runbooks = scope.ServiceProvider.GetRequiredService<RunbookCatalog>();
        var regressions = deploymentIds.Select(id => new DecisionPolicy.Regression(deployments[id], runbooks.VersionOf(deployments[id]), evidence)).ToList();
        var policy = scope.ServiceProvider.GetRequiredService<DecisionPolicy>();
        Task Decide() => policy.OnRegressedAsync(db, regressions, CancellationToken.None);
        await (deciding is null ? Decide() : deciding(db, Decide));
        await transaction.CommitAsync();
    }

    public static readonly MetricEvidence P95Regressed =
        new("p95-latency", 0.912, 0.64, 0.768, "regressed", "p95 rose 43% over the baseline; the limit is 20%");

    public static readonly MetricEvidence ErrorRateRegressed =
        new("error-rate", 0.05, 0.002, 0.003, "regressed", "error-rate 5.00% (50 of 1000 requests failed) against a baseline of 0.20%",
            "5.00% (baseline 0.20%, threshold 0.30%)");

    /// <summary>Rows still to deliver: neither delivered nor given up.</summary>
    public Task<long> PendingAsync() => Service.CountAsync("outbox", "delivered_at IS NULL AND abandoned_at IS NULL");

    public async Task<string?> StateAsync(string deploymentId) =>
        await Service.Database.ScalarAsync<string>($"SELECT state FROM deployments WHERE id = '{deploymentId}'");

    public Task<HttpResponseMessage> PostSignedAsync(string path, string form, long? timestamp = null, string? secret = null,
        CancellationToken cancellationToken = default)
    {
        var ts = (timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds()).ToString(CultureInfo.InvariantCulture);
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative))
        {
            Content = new StringContent(form, Encoding.UTF8, "application/x-www-form-urlencoded"),
        };
        request.Headers.Add(SlackRequestVerifier.TimestampHeader, ts);
        request.Headers.Add(SlackRequestVerifier.SignatureHeader, SlackRequestVerifier.Signature(secret ?? SigningSecret, ts, Encoding.UTF8.GetBytes(form)));
        return Service.Client.SendAsync(request, cancellationToken);
    }

    /// <summary>A button press as Slack sends it: a block_actions payload in the form field payload, with the message
    /// pressed on (its text and blocks as posted) when <paramref name="message"/> is given, as Slack includes it. The same
    /// press with the same <paramref name="timestamp"/> is the same signed request.</summary>
    public Task<HttpResponseMessage> PressAsync(
        string user, string actionId, string deploymentId, System.Text.Json.JsonElement? message = null, string responseUrl = "https://hooks.slack.com/actions/T0001/1/abc",
        long? timestamp = null, CancellationToken cancellationToken = default)
    {
        var payload = System.Text.Json.JsonSerializer.Serialize(new
        {
            type = "block_actions",
            user = new { id = user, username = "someone", team_id = "T0001" },
            api_app_id = "A0001",
            container = new { type = "message", message_ts = "1700000000.000001", channel_id = "C0DECIDE01", is_ephemeral = false },
            channel = new { id = "C0DECIDE01", name = "decisions" },
            message,
            response_url = responseUrl,
            actions = new[]
            {
                new { action_id = actionId, block_id = SlackMessages.RecommendationBlockId, type = "button", value = deploymentId, action_ts = "1700000001.000001" },
            },
        }, new System.Text.Json.JsonSerializerOptions
        {
            // Characters as Slack writes them, not escaped for HTML: '&lt;' is 4 characters, not 24 once form-encoded.
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        });
        return PostSignedAsync("/slack/interactions", "payload=" + Uri.EscapeDataString(payload), timestamp, cancellationToken: cancellationToken);
    }

    /// <summary>A slash command as Slack sends it (form fields).</summary>
    public Task<HttpResponseMessage> CommandAsync(string user, string text, long? timestamp = null) =>
        PostSignedAsync("/slack/commands", string.Join('&',
            "token=legacy", "team_id=T0001", "channel_id=C0DECIDE01", "channel_name=decisions", $"user_id={user}", "user_name=someone",
            "command=%2Frolloutgate", $"text={Uri.EscapeDataString(text)}", "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1",
            "trigger_id=1.2.3"), timestamp);

    public Task<HttpResponseMessage> OperatorDecideAsync(string deploymentId, string kind) =>
        Service.Operator().PostAsJsonAsync($"/api/v1/deployments/{deploymentId}/{kind}", new { actor = "alice", reason = "test" });

    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, int seconds = PatienceSeconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"not within {seconds} s: {what}");
            }

            await Task.Delay(50);
        }
    }

    public Task AllDeliveredAsync(int seconds = PatienceSeconds) => EventuallyAsync(async () => await PendingAsync() == 0, "every outbox row delivered", seconds);

    public async ValueTask DisposeAsync()
    {
        await Service.DisposeAsync();
        await Slack.DisposeAsync();
    }
}
