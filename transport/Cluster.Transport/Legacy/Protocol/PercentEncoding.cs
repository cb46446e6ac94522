using System.Text;

namespace Cluster.Transport.Legacy;

/// <summary>grpc-message's encoding: UTF-8 bytes, with '%' and anything outside printable ASCII as %XX.</summary>
public static class PercentEncoding
{
    public static string Encode(string text)
    {
        bool plain = true;
        foreach (char c in text)
            if (c < 0x20 || c > 0x7E || c == '%') { plain = false; break; }
        if (plain) return text;
        var sb = new StringBuilder(text.Length * 2);
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            if (b >= 0x20 && b <= 0x7E && b != '%') sb.Append((char)b);
            else sb.Append('%').Append(b.ToString("X2"));
        }
        return sb.ToString();
    }

    /// <summary>Decodes leniently: a malformed escape is kept as it is, as the spec asks.</summary>
    public static string Decode(string text)
    {
        if (!text.Contains('%')) return text;
        var bytes = new List<byte>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '%' && i + 2 < text.Length && Uri.IsHexDigit(text[i + 1]) && Uri.IsHexDigit(text[i + 2]))
            {
                bytes.Add((byte)Convert.ToInt32(text.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
            {
                foreach (byte b in Encoding.UTF8.GetBytes(text[i].ToString())) bytes.Add(b);
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
