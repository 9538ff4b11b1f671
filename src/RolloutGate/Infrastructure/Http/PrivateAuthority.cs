using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RolloutGate.Infrastructure.Http;

/// <summary>
/// Connections to a server whose certificate a private certificate authority signed (a cluster's API server, a
/// Prometheus or Alertmanager behind an internal CA): exactly the authorities of one PEM file are trusted, instead of the
/// machine's public roots, which never signed such a certificate. Host names are still checked by TLS as usual.
/// </summary>
public static class PrivateAuthority
{
    /// <summary>
    /// A handler trusting the authorities in <paramref name="caFile"/>, or the machine's roots when it is null. The
    /// handler factory makes a new one every few minutes, so a replaced file is read again without a restart.
    /// </summary>
    public static SocketsHttpHandler Handler(string? caFile)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (caFile is not null)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                // Private authorities publish no revocation lists a client could reach.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(Read(caFile));
            handler.SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = policy };
        }

        return handler;
    }

    /// <summary>Why <paramref name="caFile"/> cannot serve as the authorities to trust, or null when it can.</summary>
    public static string? Problem(string caFile)
    {
        try
        {
            return Read(caFile).Count == 0 ? $"{caFile} holds no PEM certificate" : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            return $"{caFile} cannot be read as PEM certificates: {ex.Message}";
        }
    }

    private static X509Certificate2Collection Read(string caFile)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(caFile);
        return authorities;
    }
}
