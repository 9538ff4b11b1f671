using System.Diagnostics.CodeAnalysis;
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
    /// A handler trusting exactly <paramref name="authorities"/>, or the machine's roots when there are none given. The
    /// handler factory makes a new one every few minutes, so a replaced file is read again without a restart.
    /// </summary>
    public static SocketsHttpHandler Handler(X509Certificate2Collection? authorities)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (authorities is not null)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                // Private authorities publish no revocation lists a client could reach.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(authorities);
            handler.SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = policy };
        }

        return handler;
    }

    /// <summary>
    /// A handler trusting exactly the authorities of <paramref name="caFile"/>, read now. When it cannot serve (start-up
    /// checked it, but it may have gone since), each connection fails as an unreachable server would, naming the file,
    /// until a later handler can read it: the caller reports that as it reports any unreachable server, instead of an
    /// exception out of the client's creation.
    /// </summary>
    public static SocketsHttpHandler Handler(string caFile) =>
        TryRead(caFile, out var authorities, out var unusable)
            ? Handler(authorities)
            : new SocketsHttpHandler { ConnectCallback = (_, _) => throw new HttpRequestException($"the CA file {unusable}") };

    /// <summary>Why <paramref name="caFile"/> cannot serve as the authorities to trust, or null when it can.</summary>
    public static string? Problem(string caFile) => TryRead(caFile, out _, out var problem) ? null : problem;

    /// <summary>The authorities in <paramref name="caFile"/>, or why it cannot serve as them (read once for both).</summary>
    public static bool TryRead(
        string caFile, [NotNullWhen(true)] out X509Certificate2Collection? authorities, [NotNullWhen(false)] out string? problem)
    {
        X509Certificate2Collection read;
        try
        {
            read = Read(caFile);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            (authorities, problem) = (null, $"{caFile} cannot be read as PEM certificates: {ex.Message}");
            return false;
        }

        if (read.Count == 0)
        {
            (authorities, problem) = (null, $"{caFile} holds no PEM certificate");
            return false;
        }

        (authorities, problem) = (read, null);
        return true;
    }

    /// <summary>The authorities in <paramref name="caFile"/>; throws as the file or its PEM fails to read.</summary>
    public static X509Certificate2Collection Read(string caFile)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(caFile);
        return authorities;
    }
}
