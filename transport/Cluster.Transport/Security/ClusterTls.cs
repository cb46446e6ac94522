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
/// </summary>
public sealed class ClusterTls
{
    public const string EnvironmentVariable = "CLUSTER_TLS_DIR";
    public const string CaFile = "ca.crt", CertificateFile = "tls.crt", KeyFile = "tls.key";

    private ClusterTls(X509Certificate2 ca, X509Certificate2 certificate, string directory)
    {
        Ca = ca;
        Certificate = certificate;
        Directory = directory;
    }

    public X509Certificate2 Ca { get; }
    /// <summary>This role's certificate with its private key, for Kestrel.</summary>
    public X509Certificate2 Certificate { get; }
    public string Directory { get; }

    /// <summary>From <paramref name="directory"/> when given, else from <see cref="EnvironmentVariable"/>, else none.</summary>
    public static ClusterTls? Load(string? directory)
    {
        directory ??= Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } env ? env : null;
        if (directory is null) return null;
        string ca = Path.Combine(directory, CaFile), cert = Path.Combine(directory, CertificateFile), key = Path.Combine(directory, KeyFile);
        foreach (string file in (string[])[ca, cert, key])
            if (!File.Exists(file)) throw new FileNotFoundException($"cluster TLS: '{file}' not found", file);
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
        var tls = new ClusterTls(caCert, leaf, directory);
        if (!tls.Trusts(leaf)) throw new FormatException($"cluster TLS: '{cert}' is not signed by '{ca}'");
        return tls;
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

    /// <summary>For <see cref="GrpcClientOptions.ServerCertificateValidation"/>: the chain must build to <see cref="Ca"/>.</summary>
    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) =>
        certificate is not null && Trusts(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));

    private bool Trusts(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}
