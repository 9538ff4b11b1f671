using System.Net.Http.Headers;
using Microsoft.Extensions.Options;

namespace RolloutGate.Infrastructure.Http;

/// <summary>
/// Puts the configured credentials and headers (<see cref="MonitoringAuthOptions"/>) on every request to Prometheus or
/// Alertmanager, attempt by attempt (inside the resilience pipeline), reading the settings as they are now: a token
/// file is read again for each request, so a rotated token is used from the next one on. A token file that cannot be
/// read fails the request with the file named, as an unreachable server would, so the caller reports it the same way.
/// </summary>
public sealed class MonitoringAuthHandler(Func<MonitoringAuthOptions> settings) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var auth = settings();
        foreach (var (name, value) in auth.Headers)
        {
            request.Headers.Remove(name);
            request.Headers.TryAddWithoutValidation(name, value);
        }

        if (!string.IsNullOrEmpty(auth.BearerToken))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", auth.BearerToken);
        }
        else if (!string.IsNullOrEmpty(auth.BearerTokenFile))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await BearerTokenFile.ReadAsync(auth.BearerTokenFile, cancellationToken));
        }
        else if (auth.BasicCredentials() is { } basic)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", basic);
        }

        return await base.SendAsync(request, cancellationToken);
    }

    /// <summary>
    /// The connection under it: trusting the configured CA file's authorities, or the machine's roots. Redirects are not
    /// followed: the headers set here went along to wherever one pointed, another host included (its bearer token too,
    /// seen on some requests), and neither API redirects a query; the caller reports one (<see cref="MonitoringAuthOptions.Refusal"/>).
    /// </summary>
    public static SocketsHttpHandler Primary(MonitoringAuthOptions settings)
    {
        // Start-up checked it; read again for each new handler, it may have gone since. Each request then fails as an
        // unreachable server would, naming the file (the watch records an outage), until a later handler can read it.
        var handler = string.IsNullOrEmpty(settings.CaFile) ? PrivateAuthority.Handler(authorities: null) : PrivateAuthority.Handler(settings.CaFile);
        handler.AllowAutoRedirect = false;
        return handler;
    }
}

public static class MonitoringAuthExtensions
{
    /// <summary>
    /// The credentials, headers and CA of <paramref name="select"/>'s section (Prometheus's or Alertmanager's) on a client:
    /// <see cref="MonitoringAuthHandler"/> on every attempt, over <see cref="MonitoringAuthHandler.Primary"/>'s connection.
    /// </summary>
    public static IHttpClientBuilder AddMonitoringAuth(this IHttpClientBuilder builder, Func<RolloutGateOptions, MonitoringAuthOptions> select) =>
        builder
            .AddHttpMessageHandler(provider =>
                new MonitoringAuthHandler(() => select(provider.GetRequiredService<IOptionsMonitor<RolloutGateOptions>>().CurrentValue)))
            .ConfigurePrimaryHttpMessageHandler(provider =>
                MonitoringAuthHandler.Primary(select(provider.GetRequiredService<IOptionsMonitor<RolloutGateOptions>>().CurrentValue)));
}
