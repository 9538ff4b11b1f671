using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Core.Runbooks;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Rollbacks;
using RolloutGate.Webhooks;

namespace RolloutGate.Tests.Rollbacks;

/// <summary>
/// The webhook action against a local receiver that verifies deliveries exactly as RolloutGate verifies CD webhooks
/// (the real <see cref="WebhookAuthenticator"/> with the same secret), and answers with statuses the test queues.
/// </summary>
public sealed class WebhookRollbackTests : IAsyncLifetime
{
    private const string Secret = "rollback-hook-secret";

    private readonly ConcurrentQueue<int> answers = new();
    private readonly ConcurrentQueue<(string Delivery, string? Refusal, JsonElement Body)> received = new();
    private WebApplication receiver = null!;
    private ServiceProvider verifier = null!;
    private ServiceProvider services = null!;

    public async Task InitializeAsync()
    {
        var verifying = new ServiceCollection();
        verifying.AddSingleton(TimeProvider.System);
        verifying.AddOptions<RolloutGateOptions>().Configure(options => options.Webhook.Secret = Secret);
        verifying.AddSingleton<WebhookAuthenticator>();
        verifying.AddSingleton<RolloutGate.Operations.RolloutGateMetrics>();
        verifying.AddLogging();
        verifier = verifying.BuildServiceProvider();

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        receiver = builder.Build();
        receiver.MapPost("/hooks/rollback", async (HttpRequest request) =>
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer);
            var body = buffer.ToArray();
            var refusal = verifier.GetRequiredService<WebhookAuthenticator>().Authenticate(request, body).Refusal;
            received.Enqueue((request.Headers[DeploymentEndpoints.DeliveryHeader].ToString(), refusal, JsonDocument.Parse(body).RootElement.Clone()));
            return refusal is not null ? Results.Text(refusal, statusCode: 401)
                : answers.TryDequeue(out var status) ? Results.StatusCode(status)
                : Results.Accepted();
        });
        // A receiver that sends the delivery on to another host: the same one under another name, which would accept it.
        receiver.MapPost("/hooks/moved", () => Results.Redirect(receiver.Urls.Single().Replace("127.0.0.1", "localhost", StringComparison.Ordinal) + "/hooks/rollback",
            permanent: false, preserveMethod: true));
        // A receiver whose error page never ends: 400 and its first kilobytes, then more every 100 ms until the caller goes.
        receiver.MapPost("/hooks/endless", async (HttpContext context) =>
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            var line = System.Text.Encoding.UTF8.GetBytes("rollbacks are refused for this service; " + new string('x', 1000) + "\n");
            while (!context.RequestAborted.IsCancellationRequested)
            {
                await context.Response.Body.WriteAsync(line, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(100, context.RequestAborted);
            }
        });
        // A receiver that repeats the request it refuses, as Express's "Cannot POST /path?query" page does.
        receiver.MapPost("/hooks/echo", (HttpRequest request) =>
            Results.Text(
                $"Cannot POST {request.Path}{request.QueryString} (key {request.Query["key"]}, signature {request.Headers[WebhookAuthenticator.SignatureHeader]}, " +
                $"authorization {request.Headers.Authorization})",
                statusCode: StatusCodes.Status404NotFound));
        // A receiver behind basic authentication, as a reverse proxy in front of a CD system often is.
        receiver.MapPost("/hooks/protected", (HttpRequest request) =>
            request.Headers.Authorization == "Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("deployer:p@ss:word"))
                ? Results.Accepted() : Results.Text("Unauthorized", statusCode: StatusCodes.Status401Unauthorized));
        await receiver.StartAsync();
        services = RollbackTestServices.Create("http://127.0.0.1:1", Path.Combine(Path.GetTempPath(), "rolloutgate-tests-no-token"));
    }

    public async Task DisposeAsync()
    {
        await services.DisposeAsync();
        await receiver.DisposeAsync();
        await verifier.DisposeAsync();
    }

    private RollbackRequest Request(string secret = Secret, string path = "/hooks/rollback") =>
        RollbackTestServices.Request(new RollbackAction(Webhook: new WebhookRollback(receiver.Urls.Single() + path, secret)));

    private Task<RollbackOutcome> ExecuteAsync(RollbackRequest request) =>
        services.GetRequiredService<IRollbackExecutor>().ExecuteAsync(request, CancellationToken.None);

    [Fact]
    public async Task Webhook_ReceiverRedirects_TheSignedDeliveryIsNotSentOnAndTheActionFails()
    {
        // A signed rollback goes to the address in the runbook and nowhere else: a 307 would resend it, signature and
        // all, to whatever host the receiver names.
        var outcome = await ExecuteAsync(Request(path: "/hooks/moved"));

        Assert.False(outcome.Succeeded);
        Assert.Contains("the receiver answered 307", outcome.Detail, StringComparison.Ordinal);
        Assert.Equal(1, outcome.Attempts);
        Assert.Empty(received);
    }

    [Fact]
    public async Task Webhook_ReceiverAnswersWithAnEndlessErrorPage_FailsAtOnceWithItsStart()
    {
        // Only the excerpt is read: waiting for the whole body would hold every attempt until its timeout.
        var outcome = await ExecuteAsync(Request(path: "/hooks/endless"));

        Assert.False(outcome.Succeeded);
        Assert.Equal(1, outcome.Attempts);
        Assert.Contains("the receiver answered 400 Bad Request: rollbacks are refused for this service; xxx", outcome.Detail, StringComparison.Ordinal);
        Assert.Contains("xxx… (after 1 attempt)", outcome.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Webhook_ReceiverEchoesTheRequest_TheOutcomeQuotesItWithoutTheCredentialsOfTheUrl()
    {
        // The outcome goes to the log, the audit trail and Slack: the key in the runbook's url must not go with it, nor the
        // signature, against which a weak secret could be guessed offline.
        var url = receiver.Urls.Single().Replace("http://", "http://deployer:user-info-secret@", StringComparison.Ordinal)
            + "/hooks/echo?key=query-key%2Fsecret&ref=main";

        var outcome = await ExecuteAsync(RollbackTestServices.Request(new RollbackAction(Webhook: new WebhookRollback(url, Secret))));

        Assert.False(outcome.Succeeded);
        Assert.Contains(
            "the receiver answered 404 Not Found: Cannot POST /hooks/echo?[redacted] (key [redacted], signature [redacted], authorization Basic [redacted])",
            outcome.Detail, StringComparison.Ordinal);
        foreach (var secret in new[] { "query-key", "user-info-secret", "sha256=" })
        {
            Assert.DoesNotContain(secret, outcome.Action + outcome.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Webhook_UserInfoInTheUrl_IsSentAsBasicCredentials()
    {
        var url = receiver.Urls.Single().Replace("http://", "http://deployer:p%40ss%3Aword@", StringComparison.Ordinal) + "/hooks/protected";

        var outcome = await ExecuteAsync(RollbackTestServices.Request(new RollbackAction(Webhook: new WebhookRollback(url, Secret))));

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal($"webhook POST {receiver.Urls.Single()}/hooks/protected", outcome.Action);
    }

    [Fact]
    public async Task Webhook_SignedDelivery_IsVerifiedAndCarriesTheRollback()
    {
        var outcome = await ExecuteAsync(Request());

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal($"webhook POST {receiver.Urls.Single()}/hooks/rollback", outcome.Action);
        var (delivery, refusal, body) = Assert.Single(received);
        Assert.Null(refusal);
        Assert.Equal("rollback-gh-run-8812-1", delivery);
        Assert.Equal("gh-run-8812", body.GetProperty("deploymentId").GetString());
        Assert.Equal("checkout", body.GetProperty("service").GetString());
        Assert.Equal("production", body.GetProperty("environment").GetString());
        Assert.Equal("2.3.9", body.GetProperty("rollbackTo").GetString());
        Assert.Equal("error-rate 4.1% > 2%", body.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Webhook_ReceiverFailsThenAccepts_RetriesWithTheSameDeliveryId()
    {
        answers.Enqueue(503);
        answers.Enqueue(500);

        var outcome = await ExecuteAsync(Request());

        Assert.True(outcome.Succeeded, outcome.Detail);
        Assert.Equal(3, outcome.Attempts);
        Assert.Equal(3, received.Count);
        Assert.Single(received.Select(r => r.Delivery).Distinct());
        Assert.All(received, r => Assert.Null(r.Refusal));
    }

    [Fact]
    public async Task Webhook_WrongSecret_FailsOnceWithTheReceiversReason()
    {
        var outcome = await ExecuteAsync(Request(secret: "not-the-secret"));

        Assert.False(outcome.Succeeded);
        Assert.Equal(1, outcome.Attempts);
        Assert.Contains("401", outcome.Detail, StringComparison.Ordinal);
        Assert.Contains("the signature does not match", outcome.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-secret", outcome.Detail + outcome.Action, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Webhook_ReceiverAlwaysFailing_GivesUpAfterBoundedRetries()
    {
        for (var i = 0; i <= RollbackTestServices.MaxRetryAttempts; i++)
        {
            answers.Enqueue(502);
        }

        var outcome = await ExecuteAsync(Request());

        Assert.False(outcome.Succeeded);
        Assert.Equal(RollbackTestServices.MaxRetryAttempts + 1, outcome.Attempts);
        Assert.Contains("502", outcome.Detail, StringComparison.Ordinal);
    }
}
