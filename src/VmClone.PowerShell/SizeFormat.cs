using System.Globalization;

namespace VmClone.PowerShell;

/// <summary>Human-readable sizes for the format views; properties themselves stay in bytes.</summary>
public static class SizeFormat
{
    private static readonly string[] Units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };

    /// <summary>1536 → "1.5 KiB"; 42949672960 → "40 GiB".</summary>
    public static string Bytes(long bytes)
    {
        double value = bytes;
        int unit = 0;
        while (System.Math.Abs(value) >= 1024 && unit < Units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        string number = unit == 0 || value >= 100 || value == System.Math.Floor(value)
            ? value.ToString("0", CultureInfo.InvariantCulture)
            : value.ToString("0.#", CultureInfo.InvariantCulture);
        return number + " " + Units[unit];
    }
}
