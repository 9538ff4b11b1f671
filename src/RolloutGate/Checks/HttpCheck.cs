using System.Text;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Checks;

/// <summary>GETs a URL within the check's timeout and expects a status and, optionally, a substring of the body.</summary>
internal sealed class HttpCheck(IHttpClientFactory httpClients, TimeProvider time) : IPreDeployCheck
{
    public string Kind => "http";

    public async Task<CheckResult> RunAsync(CheckSpec check, CheckContext context, CancellationToken cancellationToken)
    {
        var spec = check.Http ?? throw new ArgumentException($"check '{check.Name}' is not an http check", nameof(check));
        var timeout = spec.Timeout ?? CheckConstants.DefaultHttpTimeout;
        using var deadline = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        using var http = httpClients.CreateClient(CheckConstants.HttpCheckHttpClient);
        // Never the query string or user info in the detail (an answer and an audit event): either may carry a credential.
        var shown = Urls.Shown(spec.Url);
        try
        {
            using var response = await http.GetAsync(spec.Url, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            var status = (int)response.StatusCode;
            if (status != spec.ExpectStatus)
            {
                return CheckResult.Fail(check.Name, $"GET {shown} answered {status}, expected {spec.ExpectStatus}");
            }

            if (spec.BodyContains is { } expected)
            {
                var body = await ReadBodyAsync(response, linked.Token);
                if (!body.Contains(expected, StringComparison.Ordinal))
                {
                    return CheckResult.Fail(check.Name, $"GET {shown} answered {status}, but the body does not contain '{expected}'");
                }

                return CheckResult.Pass(check.Name, $"GET {shown} answered {status} containing '{expected}'");
            }

            // Say so when the answer did not come from the real service (demo mode of deploy/local/run.sh).
            var standIn = response.Headers.Contains(Demo.DemoClusterNamesHandler.AnsweredBy) ? " (answered by the demo stand-in, not the network)" : "";
            return CheckResult.Pass(check.Name, $"GET {shown} answered {status}{standIn}");
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return CheckResult.Error(check.Name, $"GET {shown} gave no answer within {CheckFormat.Duration(timeout)}");
        }
        catch (HttpRequestException exception)
        {
            return CheckResult.Error(check.Name, $"GET {shown} failed: {exception.Message}");
        }
    }

    /// <summary>The body's first <see cref="CheckConstants.MaxBodyBytes"/> bytes: a health page is small, a huge one must not fill memory.</summary>
    private static async Task<string> ReadBodyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[CheckConstants.MaxBodyBytes];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken)) > 0)
        {
            length += read;
        }

        return Encoding.UTF8.GetString(buffer, 0, length);
    }
}
