using System.Net.Http.Headers;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure.Http;

namespace RolloutGate.Checks;

/// <summary>
/// GETs a URL within the check's timeout and expects a status and, optionally, a substring of the body. Without a timeout
/// of its own the check has what remains of <c>preDeploy.timeout</c>, as runbooks/README.md and schema.json say: the
/// runner's token cuts it off then, and the runner's error names that timeout.
/// </summary>
internal sealed class HttpCheck(IHttpClientFactory httpClients, TimeProvider time) : IPreDeployCheck
{
    public string Kind => "http";

    public async Task<CheckResult> RunAsync(CheckSpec check, CheckContext context, CancellationToken cancellationToken)
    {
        var spec = check.Http ?? throw new ArgumentException($"check '{check.Name}' is not an http check", nameof(check));
        using var deadline = spec.Timeout is { } timeout ? new CancellationTokenSource(timeout, time) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        using var http = httpClients.CreateClient(CheckConstants.HttpCheckHttpClient);
        // Never the query string or user info in the detail (an answer and an audit event): either may carry a credential.
        var shown = Urls.Shown(spec.Url);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, spec.Url);
            // The URL's user info as Basic credentials, as curl sends it: HttpClient would send none.
            if (Urls.BasicCredentials(spec.Url) is { } basic)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic", basic);
            }

            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            var status = (int)response.StatusCode;
            // Say so when the answer did not come from the real service (demo mode of deploy/local/run.sh), whatever the
            // outcome: "answered 200, expected 204" alone reads as the service itself having answered.
            var standIn = response.Headers.Contains(Demo.DemoClusterNamesHandler.AnsweredBy) ? " (answered by the demo stand-in, not the network)" : "";
            if (status != spec.ExpectStatus)
            {
                return CheckResult.Fail(check.Name, $"GET {shown} answered {status}, expected {spec.ExpectStatus}{standIn}");
            }

            if (spec.BodyContains is { } expected)
            {
                // The first CheckConstants.MaxBodyBytes only: a health page is small, a huge one must not fill memory.
                var (body, _) = await ResponseBodies.StartAsync(response, CheckConstants.MaxBodyBytes, linked.Token);
                if (!body.Contains(expected, StringComparison.Ordinal))
                {
                    return CheckResult.Fail(check.Name, $"GET {shown} answered {status}, but the body does not contain '{expected}'{standIn}");
                }

                return CheckResult.Pass(check.Name, $"GET {shown} answered {status} containing '{expected}'{standIn}");
            }

            return CheckResult.Pass(check.Name, $"GET {shown} answered {status}{standIn}");
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return CheckResult.Error(check.Name, $"GET {shown} gave no answer within {CheckFormat.Duration(spec.Timeout!.Value)}");
        }
        catch (HttpRequestException exception)
        {
            return CheckResult.Error(check.Name, $"GET {shown} failed: {exception.Message}");
        }
    }
}
