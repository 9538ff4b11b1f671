using System.Net;
using RolloutGate.Checks;

namespace RolloutGate.Demo;

/// <summary>
/// In demo mode only (<c>RolloutGate__Demo__Enabled=true</c>, set by deploy/local/run.sh), an http check to a
/// cluster-internal name (<c>*.svc</c>, <c>*.svc.cluster.local</c>) is answered by the demo's stand-in for that
/// service instead of the network, so the sample runbook's <c>payments-healthy</c> check can pass on a laptop.
/// The answer says that it came from the demo. Outside demo mode this handler passes every request through.
/// </summary>
public sealed class DemoClusterNamesHandler(IConfiguration configuration) : DelegatingHandler
{
    public const string AnsweredBy = "X-RolloutGate-Demo";

    public static bool IsClusterName(string host) =>
        host.EndsWith(".svc", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".svc.cluster.local", StringComparison.OrdinalIgnoreCase);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!configuration.GetValue<bool>("RolloutGate:Demo:Enabled") || request.RequestUri is not { } uri || !IsClusterName(uri.Host))
        {
            return base.SendAsync(request, cancellationToken);
        }

        var response = new HttpResponseMessage(HttpStatusCode.OK)
        {
            RequestMessage = request,
            Content = new StringContent($"ok: demo stand-in for {uri.Host}{uri.AbsolutePath}"),
        };
        response.Headers.Add(AnsweredBy, "cluster-name stand-in");
        return Task.FromResult(response);
    }
}

public static class DemoExtensions
{
    /// <summary>
    /// Puts the demo's stand-in in front of the http check's client, and registers the demo workload; both inert unless
    /// demo mode is on.
    /// </summary>
    public static IServiceCollection AddDemo(this IServiceCollection services)
    {
        services.AddSingleton<DemoWorkload>();
        services.AddTransient<DemoClusterNamesHandler>();
        services.AddHttpClient(CheckConstants.HttpCheckHttpClient).AddHttpMessageHandler<DemoClusterNamesHandler>();
        return services;
    }
}
