using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Cluster.Transport;

/// <summary>
/// The TLS the cluster token travels over between roles: a cluster CA and this role's certificate signed by it, read
/// from a directory holding <c>ca.crt</c>, <c>tls.crt</c> and <c>tls.key</c> (PEM; the layout of a kubernetes.io/tls
/// Secret with its CA, as cert-manager writes one). Internal listeners serve <see cref="Certificate"/>; callers accept a
/// server whose chain builds to <c>ca.crt</c> alone, never to the system's roots. The host name is not checked:
/// nodes are dialed by IPs and pod DNS names that change, and what makes a server a member is a certificate from the
/// cluster's CA; what makes a caller one is the token (<see cref="ClusterToken"/>), which TLS keeps from being read.
/// The files are read again when they change (looked at no more often than <see cref="RecheckInterval"/>, on the next
/// handshake), so a certificate cert-manager renews into the mounted Secret is served without a restart; after a new
/// CA, a server still on the one before is trusted too, until it has reloaded.
/// </summary>
public sealed class ClusterTls
{
    public const string EnvironmentVariable = "CLUSTER_TLS_DIR";
    public const string CaFile = "ca.crt", CertificateFile = "tls.crt", KeyFile = "tls.key";

    /// <summary>How long a handshake goes on with the files as last read before it looks at them again.</summary>
    public static TimeSpan RecheckInterval { get; set; } = TimeSpan.FromSeconds(10);

    private sealed record Files(X509Certificate2 Ca, X509Certificate2 Certificate, X509Certificate2? PreviousCa, DateTime Written);

    private Files _files;
    private long _checkedAt;

    private ClusterTls(Files files, string directory)
    {
        _files = files;
        _checkedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        Directory = directory;
    }

    public X509Certificate2 Ca => Fresh().Ca;
    /// <summary>This role's certificate with its private key, for Kestrel: the one the files hold now.</summary>
    public X509Certificate2 Certificate => Fresh().Certificate;
    public string Directory { get; }

    /// <summary>From <paramref name="directory"/> when given, else from <see cref="EnvironmentVariable"/>, else none.</summary>
    public static ClusterTls? Load(string? directory)
    {
        directory ??= Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } env ? env : null;
        if (directory is null) return null;
        return new ClusterTls(Read(directory, previousCa: null), directory);
    }

    private static Files Read(string directory, X509Certificate2? previousCa)
    {
        string ca = Path.Combine(directory, CaFile), cert = Path.Combine(directory, CertificateFile), key = Path.Combine(directory, KeyFile);
        foreach (string file in (string[])[ca, cert, key])
            if (!File.Exists(file)) throw new FileNotFoundException($"cluster TLS: '{file}' not found", file);
        DateTime written = LastWrite(directory);
        X509Certificate2 caCert, leaf;
        try { caCert = X509Certificate2.CreateFromPem(File.ReadAllText(ca)); }
        catch (CryptographicException e) { throw new FormatException($"cluster TLS: '{ca}' is not a PEM certificate: {e.Message}"); }
        try
        {
            using X509Certificate2 pem = X509Certificate2.CreateFromPemFile(cert, key);
            // Kestrel on Linux serves a key it can export; a PEM-loaded key round-trips through PKCS#12 to be one.
            leaf = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw new FormatException($"cluster TLS: '{cert}' with '{key}': {e.Message}");
        }
        if (!Trusts(caCert, leaf)) throw new FormatException($"cluster TLS: '{cert}' is not signed by '{ca}'");
        return new Files(caCert, leaf, previousCa is not null && previousCa.Thumbprint != caCert.Thumbprint ? previousCa : null, written);
    }

    /// <summary>The newest write of the three files (a Secret's update swaps the directory they resolve through).</summary>
    private static DateTime LastWrite(string directory)
    {
        DateTime newest = DateTime.MinValue;
        foreach (string name in (string[])[CaFile, CertificateFile, KeyFile])
        {
            var file = new FileInfo(Path.Combine(directory, name));
            // Through a symlink (how a mounted Secret's files are kept), the time of what it points at.
            DateTime written = (file.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? file).LastWriteTimeUtc;
            if (written > newest) newest = written;
        }
        return newest;
    }

    /// <summary>The files as last read, read again first when they changed since (at most every <see cref="RecheckInterval"/>).</summary>
    private Files Fresh()
    {
        Files files = Volatile.Read(ref _files);
        long checkedAt = Volatile.Read(ref _checkedAt);
        if (System.Diagnostics.Stopwatch.GetElapsedTime(checkedAt) < RecheckInterval
            || Interlocked.CompareExchange(ref _checkedAt, System.Diagnostics.Stopwatch.GetTimestamp(), checkedAt) != checkedAt)
            return files;
        try
        {
            if (LastWrite(Directory) == files.Written) return files;
            Files next = Read(Directory, files.Ca);
            Volatile.Write(ref _files, next);
            return next;
        }
        // A Secret caught mid-update, or a bad renewal: keep serving what was read last, and look again next time.
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException) { return files; }
    }

    /// <summary>
    /// Writes a fresh CA (ECDSA P-256, 10 years) and a server certificate signed by it (1 year; localhost, 127.0.0.1,
    /// ::1 and <paramref name="hosts"/>) into <paramref name="directory"/>, the keys readable by their owner only.
    /// </summary>
    public static ClusterTls Generate(string directory, IEnumerable<string>? hosts = null)
    {
        System.IO.Directory.CreateDirectory(directory);
        DateTimeOffset now = DateTimeOffset.UtcNow.AddMinutes(-5);
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=cluster CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using X509Certificate2 ca = caRequest.CreateSelfSigned(now, now.AddYears(10));

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=cluster node", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddIpAddress(System.Net.IPAddress.IPv6Loopback);
        foreach (string host in hosts ?? [])
            if (System.Net.IPAddress.TryParse(host, out System.Net.IPAddress? ip)) names.AddIpAddress(ip);
            else names.AddDnsName(host);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using X509Certificate2 leaf = request.Create(ca, now, now.AddYears(1), RandomNumberGenerator.GetBytes(16));

        File.WriteAllText(Path.Combine(directory, CaFile), ca.ExportCertificatePem());
        File.WriteAllText(Path.Combine(directory, CertificateFile), leaf.ExportCertificatePem());
        OwnerOnlyFile.Write(Path.Combine(directory, KeyFile), key.ExportPkcs8PrivateKeyPem());
        OwnerOnlyFile.Write(Path.Combine(directory, "ca.key"), caKey.ExportPkcs8PrivateKeyPem());
        return Load(directory)!;
    }

    /// <summary>
    /// For <see cref="GrpcClientOptions.ServerCertificateValidation"/>: the chain must build to <see cref="Ca"/>, or to
    /// the CA before it while servers move to a new one.
    /// </summary>
    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null) return false;
        X509Certificate2 served = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        Files files = Fresh();
        return Trusts(files.Ca, served) || (files.PreviousCa is { } previous && Trusts(previous, served));
    }

    private static bool Trusts(X509Certificate2 ca, X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}
