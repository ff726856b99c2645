// Link every figure of a page to its full-size PNG (opens in a new tab), so a reader or a teacher at a projector can
// read a wide figure at its own resolution.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("article div.cell_output img, article figure img").forEach((img) => {
    if (img.closest("a")) return;
    const link = document.createElement("a");
    link.href = img.getAttribute("src");
    link.target = "_blank";
    link.className = "full-size";
    link.title = "Open the figure at full size";
    img.replaceWith(link);
    link.appendChild(img);
  });
});
