using System;
using System.IO;
using System.Security.Cryptography;

namespace VmClone.Disks.Tests.Support;

public static class Hashing
{
    public static string Sha256File(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(fs)).ToLowerInvariant();
    }

    /// <summary>sha256 of a stream's content from the start, read in 1 MiB chunks.</summary>
    public static string Sha256Stream(Stream stream)
    {
        stream.Position = 0;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[1 << 20];
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
            sha.AppendData(buffer, 0, n);
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    public static string Sha256Bytes(byte[] data) => Convert.ToHexString(SHA256.HashData(data)).ToLowerInvariant();
}
