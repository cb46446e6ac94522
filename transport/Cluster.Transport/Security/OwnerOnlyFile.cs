namespace Cluster.Transport;

/// <summary>Secrets on disk (the cluster token, TLS keys) are readable by their owner only, as ssh keys are kept.</summary>
internal static class OwnerOnlyFile
{
    /// <summary>Writes <paramref name="text"/> (ASCII) to <paramref name="file"/>, mode 0600 from its creation on.</summary>
    public static void Write(string file, string text)
    {
        using var f = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(f.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        f.Write(System.Text.Encoding.ASCII.GetBytes(text));
    }
}
